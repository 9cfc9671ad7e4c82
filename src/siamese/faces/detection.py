"""Finding faces in a photo: OpenCV's Haar cascade (Viola-Jones) or dlib's HOG detector.

Both run on a grayscale copy shrunk so that its longer side is at most `max_side` pixels (a
detector's cost grows with the pixel count, and faces in a large photo are large); boxes are
given in the original image's pixels. When a detector finds nothing, it tries again on the
photo enlarged so that its shorter side is each of `retry_sides` in turn: the detectors have
a smallest face (Haar 30 px, HOG an 80 px window) and, past it, miss some faces at one scale
that they find at another. Measured on 2 cores (benchmarks/bench_faces.py), this finds more
faces than dlib's usual one upsampling, in less time, on both ORL and the celebrity photos.

No torch here: this module runs in the image-decoding worker processes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from siamese.faces.dependencies import require_cv2, require_dlib

DETECTORS = ("hog", "haar")


@dataclass(frozen=True)
class FaceBox:
    """A detected face: pixel box [left, right) × [top, bottom) of the original image and the
    detector's score (HOG: SVM margin; Haar: number of neighbouring detections)."""

    left: float
    top: float
    right: float
    bottom: float
    score: float

    @property
    def area(self) -> float:
        return max(0.0, self.right - self.left) * max(0.0, self.bottom - self.top)

    def as_list(self) -> list[float]:
        """[left, top, right, bottom] rounded to 0.1 px, for JSON."""
        return [round(v, 1) for v in (self.left, self.top, self.right, self.bottom)]


# One detector of each kind per thread: dlib's and OpenCV's detector objects are not safe to
# share between threads (a service decoding uploads in a thread pool crashed in dlib when
# eight requests detected at once with one shared detector).
_PER_THREAD = threading.local()


def _hog() -> Any:
    detector = getattr(_PER_THREAD, "hog", None)
    if detector is None:
        detector = _PER_THREAD.hog = require_dlib().get_frontal_face_detector()
    return detector


def _haar() -> Any:
    cascade = getattr(_PER_THREAD, "haar", None)
    if cascade is not None:
        return cascade
    cv2 = require_cv2()
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        from siamese.errors import ConfigError

        raise ConfigError(
            f"OpenCV's Haar cascade {path} did not load: reinstall opencv-python-headless"
        )
    _PER_THREAD.haar = cascade
    return cascade


def main_face(boxes: list[FaceBox]) -> FaceBox | None:
    """The face a photo of one person is about: the largest box among the confident ones
    (score at least half the best score). A faint false detection in the hair or background
    can be as large as the face (seen on the celebrity photos), so size alone misleads."""
    if not boxes:
        return None
    best = max(box.score for box in boxes)
    return max((box for box in boxes if box.score >= 0.5 * best), key=lambda box: box.area)


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB or (H, W) uint8 → (H, W) uint8 luma (ITU-R 601, as OpenCV and PIL)."""
    if image.ndim == 2:
        return image
    cv2 = require_cv2()
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


DEFAULT_RETRY_SIDES = (300, 480, 640)


def detect_faces(
    image: np.ndarray,
    detector: str = "hog",
    max_side: int = 640,
    retry_sides: tuple[int, ...] = DEFAULT_RETRY_SIDES,
    every_scale: bool = False,
) -> list[FaceBox]:
    """Every face a detector finds in one image, largest first.

    Args:
        image: (H, W, 3) RGB or (H, W) grayscale uint8.
        detector: "hog" (dlib's frontal face detector, HOG + linear SVM) or "haar" (OpenCV's
            haarcascade_frontalface_default, scale step 1.1, 5 neighbours, faces ≥ 30 px).
        max_side: shrink the image so its longer side is at most this before detecting.
        retry_sides: when nothing is found, the shorter sides to enlarge the image to, in
            turn, until something is (sides not above the image's own are passed over).
        every_scale: search every one of those scales even after a face is found, and merge
            the boxes (for every face of a group photo: a small face in it may only be found
            enlarged, beside a large one found at once).
    Returns:
        FaceBox per face in the original image's pixels, by decreasing area.
    """
    gray = to_gray(image)
    height, width = gray.shape
    scales = [min(1.0, max_side / max(height, width))]
    scales += [side / min(height, width) for side in retry_sides if side > min(height, width)]
    found: list[FaceBox] = []
    for scale in scales:
        boxes = _detect_at(gray, detector, scale)
        if boxes and not every_scale:
            return boxes
        found += boxes
    return _merged(found)


def _merged(boxes: list[FaceBox], overlap: float = 0.3) -> list[FaceBox]:
    """One box per face from boxes found at several scales: of boxes overlapping by more
    than `overlap` (intersection over union), the highest-scoring; largest first."""
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        if all(_iou(box, other) <= overlap for other in kept):
            kept.append(box)
    return sorted(kept, key=lambda b: -b.area)


def _iou(a: FaceBox, b: FaceBox) -> float:
    width = min(a.right, b.right) - max(a.left, b.left)
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    inter = max(0.0, width) * max(0.0, height)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def _detect_at(gray: np.ndarray, detector: str, scale: float) -> list[FaceBox]:
    height, width = gray.shape
    if scale != 1.0:
        cv2 = require_cv2()
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        gray = cv2.resize(gray, size, interpolation=interpolation)
    if detector == "hog":
        rects, scores, _ = _hog().run(gray, 0, 0.0)
        boxes = [
            FaceBox(r.left(), r.top(), r.right() + 1, r.bottom() + 1, float(s))
            for r, s in zip(rects, scores, strict=True)
        ]
    elif detector == "haar":
        found, _, weights = _haar().detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30), outputRejectLevels=True
        )
        boxes = [
            FaceBox(float(x), float(y), float(x + w), float(y + h), float(s))
            for (x, y, w, h), s in zip(np.reshape(found, (-1, 4)), np.ravel(weights), strict=True)
        ]
    else:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
    boxes = [
        FaceBox(
            max(0.0, b.left / scale),
            max(0.0, b.top / scale),
            min(float(width), b.right / scale),
            min(float(height), b.bottom / scale),
            b.score,
        )
        for b in boxes
    ]
    boxes = [b for b in boxes if b.area > 0]
    return sorted(boxes, key=lambda b: -b.area)
