"""The optional libraries of the face pipeline (`pip install 'siamese[faces]'`): OpenCV for
Haar cascades, dlib for the HOG detector and the 5-point landmark model, and
face_recognition_models for dlib's trained weights. Each import says what to install when it
fails, instead of an ImportError deep in a call."""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

from siamese.errors import ConfigError

FACES_EXTRA = "pip install 'siamese[faces]'"


def _missing(package: str, purpose: str) -> ConfigError:
    return ConfigError(
        f"{purpose} needs the package {package}, which is not installed: {FACES_EXTRA} "
        "(from a clone: pip install -e '.[faces]') installs the face pipeline's libraries"
    )


def require_cv2() -> ModuleType:
    """OpenCV (`opencv-python-headless<5`), for Haar-cascade face detection."""
    try:
        return importlib.import_module("cv2")
    except ImportError:
        raise _missing("opencv-python-headless", "Haar-cascade face detection") from None


def require_dlib() -> ModuleType:
    """dlib (`dlib-bin`), for HOG face detection, landmarks and its own face descriptors."""
    try:
        return importlib.import_module("dlib")
    except ImportError:
        raise _missing("dlib-bin", "dlib's face detector and landmark model") from None


@cache
def face_models_dir() -> Path:
    """The `models/` folder of face_recognition_models (dlib's trained face models).

    Found without importing the package: its `__init__` imports `pkg_resources`, which recent
    setuptools no longer ships.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise _missing("face_recognition_models", "dlib's face models (landmarks, face ResNet)")
    folder = Path(spec.origin).parent / "models"
    if not folder.is_dir():
        raise ConfigError(
            f"face_recognition_models is installed without its models folder ({folder}): "
            f"reinstall it ({FACES_EXTRA})"
        )
    return folder
