"""Recognition: a trained model applied to images — embed, compare against calibrated
thresholds, and a persistent gallery that enrols identities and identifies new images.

- `images`: what users hand over (paths, PIL images, arrays, tensors) → the model's input.
- `thresholds`: decision thresholds at stated false-accept rates, calibrated on classes the
  model did not train on, stored in model.json.
- `recognizer`: `Recognizer` (load a model, embed, compare).

Layering: recognition may import models, data, evaluation, distances and atomic_files;
of it, only `thresholds` is imported from below (by training, which calibrates when it
ends).
"""

from siamese.recognition.recognizer import Comparison, Recognizer
from siamese.recognition.thresholds import Thresholds, calibrate

__all__ = ["Comparison", "Recognizer", "Thresholds", "calibrate"]
