"""Recognition: a trained model applied to images — embed, compare against calibrated
thresholds, and a persistent gallery that enrolls identities and identifies new images.

- `images`: what users hand over (paths, PIL images, arrays, tensors) → the model's input.
- `decisions`: the decision rules, without torch: the accept rule, `Thresholds` (as
  model.json stores them), `Comparison`, and the gallery's threshold at a target FPIR for
  its size (`identification_basis`).
- `thresholds`: decision thresholds at stated false-accept rates, calibrated on classes the
  model did not train on, stored in model.json.
- `recognition_model`: `RecognitionModel`, what every recogniser is (metric, fingerprint,
  thresholds, prepare → embed, compare), and `load_recognizer` (`recognizer_loading`: picks the kind by folder).
- `recognizer`: `Recognizer`, a `RecognitionModel` run by PyTorch.
- `onnx_recognizer`: `OnnxRecognizer`, the same on a `siamese export --format onnx` folder,
  run by onnxruntime without importing torch.
- `fpir`: the share of strangers a gallery of N identities accepts at a threshold (its FPIR),
  estimated from labelled data, and the threshold at a target FPIR (torch-free).
- `answers`: what a gallery answers (`Identification`, `Verification`, `Enrollment`, …),
  each decision with its `DecisionBasis`.
- `gallery`: `Gallery` (enroll, identify with open-set rejection, verify, remove, rename,
  calibrate on its own people), on `gallery_store` (all of its SQL, through SQLAlchemy:
  SQLite by default), `gallery_search` (exact search, or an index of `gallery_index` tuned
  to agree with it), `gallery_search_cache` (the search kept in step with the database and
  persisted by `gallery_index_files`) and `gallery_calibration` (each enrolled identity left
  out as a stranger).

Names are imported on first use, so that `OnnxRecognizer` (with `images` and `decisions`)
imports no torch.

Layering: recognition may import models, data, evaluation, distances and atomic_files;
of it, only `thresholds` is imported from below (by training, which calibrates when it
ends).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from siamese.lazy_exports import lazy_getattr, public_names

_PUBLIC = public_names(
    {
        "siamese.recognition.decisions": ("Comparison", "Thresholds"),
        "siamese.recognition.answers": (
            "DecisionBasis",
            "Enrollment",
            "Identification",
            "Verification",
        ),
        "siamese.recognition.gallery": ("Gallery",),
        "siamese.recognition.onnx_recognizer": ("OnnxRecognizer",),
        "siamese.recognition.recognizer": ("Recognizer",),
        "siamese.recognition.recognition_model": ("RecognitionModel",),
        "siamese.recognition.thresholds": ("calibrate",),
        "siamese.recognition.recognizer_loading": ("load_recognizer",),
    }
)
__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from siamese.recognition.answers import DecisionBasis, Enrollment, Identification, Verification
    from siamese.recognition.decisions import Comparison, Thresholds
    from siamese.recognition.gallery import Gallery
    from siamese.recognition.onnx_recognizer import OnnxRecognizer
    from siamese.recognition.recognition_model import RecognitionModel
    from siamese.recognition.recognizer import Recognizer
    from siamese.recognition.recognizer_loading import load_recognizer
    from siamese.recognition.thresholds import calibrate

__getattr__ = lazy_getattr(__name__, _PUBLIC, globals())


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
