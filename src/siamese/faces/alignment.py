"""From a face box to the pixels an encoder reads: a square crop with a margin, or a chip
aligned on dlib's 5 landmarks (eye corners and the base of the nose).

The aligned chip is dlib's own (`dlib.get_face_chip`: the similarity transform that puts the
landmarks on dlib's canonical face, bilinear sampling), so the chips fed to the ported
network are the chips dlib's descriptor was trained on. No torch here: this module runs in the
image-decoding worker processes.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from siamese.faces.dependencies import face_models_dir, require_cv2, require_dlib
from siamese.faces.detection import FaceBox

LANDMARK_MODEL = "shape_predictor_5_face_landmarks.dat"


_PER_THREAD = threading.local()  # dlib's shape predictor is not shared between threads


def _landmark_model() -> Any:
    model = getattr(_PER_THREAD, "landmarks", None)
    if model is None:
        path = str(face_models_dir() / LANDMARK_MODEL)
        model = _PER_THREAD.landmarks = require_dlib().shape_predictor(path)
    return model


def _rectangle(box: FaceBox) -> Any:
    dlib = require_dlib()
    return dlib.rectangle(
        round(box.left), round(box.top), round(box.right) - 1, round(box.bottom) - 1
    )


def landmarks(image: np.ndarray, box: FaceBox) -> Any:
    """dlib's 5 landmarks of the face in `box` (a `dlib.full_object_detection`).

    Args:
        image: (H, W, 3) RGB uint8.
    """
    return _landmark_model()(np.ascontiguousarray(image), _rectangle(box))


def landmark_points(shape: Any) -> np.ndarray:
    """(5, 2) float (x, y) of a `dlib.full_object_detection`."""
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def aligned_chip(
    image: np.ndarray, box: FaceBox, size: int = 150, padding: float = 0.25
) -> np.ndarray:
    """The face in `box` rotated, scaled and centred on dlib's canonical 5-point face.

    Args:
        image: (H, W, 3) RGB uint8.
        size: the chip's side in pixels (dlib's face ResNet reads 150).
        padding: border around the canonical face, as a fraction of its size (dlib: 0.25).
    Returns:
        (size, size, 3) uint8.
    """
    dlib = require_dlib()
    image = np.ascontiguousarray(image)
    return dlib.get_face_chip(image, landmarks(image, box), size=size, padding=padding)


def margin_crop(
    image: np.ndarray, box: FaceBox, size: int = 150, margin: float = 0.2
) -> np.ndarray:
    """A square around `box` grown by `margin` of its side on every side, resized to `size`.

    Parts of the square outside the image are black. Args: image (H, W, 3) or (H, W) uint8.
    Returns (size, size[, 3]) uint8.
    """
    cv2 = require_cv2()
    side = max(1, round(max(box.right - box.left, box.bottom - box.top) * (1 + 2 * margin)))
    left = round((box.left + box.right) / 2 - side / 2)
    top = round((box.top + box.bottom) / 2 - side / 2)
    height, width = image.shape[:2]
    square = np.zeros((side, side, *image.shape[2:]), dtype=np.uint8)
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + side, width), min(top + side, height)
    if x1 > x0 and y1 > y0:
        square[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interpolation)
