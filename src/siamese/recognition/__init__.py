"""Recognition: a trained model applied to images — embed, compare against calibrated
thresholds, and a persistent gallery that enrols identities and identifies new images.

- `images`: what users hand over (paths, PIL images, arrays, tensors) → the model's input.
- `thresholds`: decision thresholds at stated false-accept rates, calibrated on classes the
  model did not train on, stored in model.json.
- `recognizer`: `Recognizer` (load a model, embed, compare).
- `gallery`: `Gallery` (enrol, identify with open-set rejection, verify, remove, rename),
  on `gallery_store` (the database, through SQLAlchemy: SQLite by default) and
  `gallery_search` (exact search, or a FAISS index, as caches of the database).

Layering: recognition may import models, data, evaluation, distances and atomic_files;
of it, only `thresholds` is imported from below (by training, which calibrates when it
ends).
"""

from siamese.recognition.gallery import Enrollment, Gallery, Identification, Verification
from siamese.recognition.recognizer import Comparison, Recognizer
from siamese.recognition.thresholds import Thresholds, calibrate

__all__ = [
    "Comparison",
    "Enrollment",
    "Gallery",
    "Identification",
    "Recognizer",
    "Thresholds",
    "Verification",
    "calibrate",
]
