"""Recognition: a trained model applied to images — embed, compare against calibrated
thresholds, and a persistent gallery that enrols identities and identifies new images.

- `images`: what users hand over (paths, PIL images, arrays, tensors) → the model's input.
- `decisions`: `Thresholds` (as model.json stores them) and `Comparison`, without torch.
- `thresholds`: decision thresholds at stated false-accept rates, calibrated on classes the
  model did not train on, stored in model.json.
- `recognizer`: `Recognizer` (load a model, embed, compare).
- `onnx_recognizer`: `OnnxRecognizer`, the same on a `siamese export --format onnx` folder,
  run by onnxruntime without importing torch.
- `gallery`: `Gallery` (enrol, identify with open-set rejection, verify, remove, rename),
  on `gallery_store` (the database, through SQLAlchemy: SQLite by default) and
  `gallery_search` (exact search, or a FAISS index, as caches of the database).

Names are imported on first use, so that `OnnxRecognizer` (with `images` and `decisions`)
imports no torch.

Layering: recognition may import models, data, evaluation, distances and atomic_files;
of it, only `thresholds` is imported from below (by training, which calibrates when it
ends).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_PUBLIC: dict[str, str] = {
    "Comparison": "siamese.recognition.decisions",
    "Enrollment": "siamese.recognition.gallery",
    "Gallery": "siamese.recognition.gallery",
    "Identification": "siamese.recognition.gallery",
    "OnnxRecognizer": "siamese.recognition.onnx_recognizer",
    "Recognizer": "siamese.recognition.recognizer",
    "Thresholds": "siamese.recognition.decisions",
    "Verification": "siamese.recognition.gallery",
    "calibrate": "siamese.recognition.thresholds",
    "load_recognizer": "siamese.recognition.gallery",
}
__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from siamese.recognition.decisions import Comparison, Thresholds
    from siamese.recognition.gallery import (
        Enrollment,
        Gallery,
        Identification,
        Verification,
        load_recognizer,
    )
    from siamese.recognition.onnx_recognizer import OnnxRecognizer
    from siamese.recognition.recognizer import Recognizer
    from siamese.recognition.thresholds import calibrate


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'siamese.recognition' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
