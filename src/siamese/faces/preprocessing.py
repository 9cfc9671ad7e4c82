"""`FaceStep`: the face detection and alignment a data source and a model declare.

A folder source (`face:` option), a named image dataset and a model's `model.json`
("preprocessing": {"face": {...}}) carry the same step, so training, evaluation,
`Recognizer.embed` and the gallery turn every photo into the same kind of face crop, and a model
trained on crops is never fed whole photos.

    face: hog                                   # dlib HOG, 5-point aligned 150×150 chip
    face: {detector: haar, align: false, margin: 0.2, size: 160}

No torch here: the step runs in the image-decoding worker processes.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from siamese.errors import ConfigError
from siamese.faces.detection import (
    DEFAULT_RETRY_SIDES,
    DETECTORS,
    FaceBox,
    detect_faces,
    main_face,
)

CROP_VERSION = 1
"""Bumped whenever detection or cropping changes what a photo gives: a part of the key of
cached crops (`siamese.data.folders.decoded_cache`), so no cache serves crops of an older rule."""
WHICH_FACES = ("largest", "all")
ON_NO_FACE = ("error", "skip")
NO_FACE = "no face found"
"""How the reason of an image without a face starts (`SkippedFile.reason`, error messages)."""


@dataclass(frozen=True)
class FaceStep:
    """How a photo becomes face crops.

    Attributes:
        detector: "hog" (dlib) or "haar" (OpenCV).
        align: True: a chip aligned on dlib's 5 landmarks (rotation and scale normalised, as
            dlib's face ResNet was trained); False: a square crop around the box.
        size: side of the crop or chip in pixels (150 for dlib's face ResNet).
        margin: crop only: border added on each side, as a fraction of the box's side.
        padding: chip only: border around the canonical face (dlib's 0.25).
        faces: "largest" (one crop per photo: the largest confident face,
            `siamese.faces.detection.main_face`) or "all" (every face, for groups).
        on_no_face: "error" (a photo without a face stops the load, listing every such file)
            or "skip" (it is left out and listed).
        max_side: photos are shrunk to at most this longer side for detection (speed).
        retry_sides: when the detector finds no face, it tries again with the photo enlarged
            to each of these shorter sides in turn (`siamese.faces.detection`).
    """

    detector: str = "hog"
    align: bool = True
    size: int = 150
    margin: float = 0.2
    padding: float = 0.25
    faces: str = "largest"
    on_no_face: str = "error"
    max_side: int = 640
    retry_sides: tuple[int, ...] = DEFAULT_RETRY_SIDES

    def __post_init__(self) -> None:
        def fail(field: str, wanted: str) -> ConfigError:
            return ConfigError(
                f"face.{field} must be {wanted}, got {getattr(self, field)!r} (the face option "
                "of a data source, or preprocessing.face in model.json)"
            )

        if self.detector not in DETECTORS:
            raise fail("detector", " or ".join(repr(d) for d in DETECTORS))
        if not isinstance(self.align, bool):
            raise fail("align", "true or false")
        for name, low in (("size", 16), ("max_side", 32)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise fail(name, f"an integer ≥ {low}")
        sides = self.retry_sides
        if not isinstance(sides, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 16 <= v <= 4096 for v in sides
        ):
            raise fail("retry_sides", "a list of integers from 16 to 4096 (may be empty)")
        object.__setattr__(self, "retry_sides", tuple(sides))
        for name in ("margin", "padding"):
            value = getattr(self, name)
            if (
                not isinstance(value, numbers.Real)
                or isinstance(value, bool)
                or not 0 <= value <= 2
            ):
                raise fail(name, "a number from 0 to 2")
        if self.faces not in WHICH_FACES:
            raise fail("faces", "'largest' or 'all'")
        if self.on_no_face not in ON_NO_FACE:
            raise fail("on_no_face", "'error' or 'skip'")

    def as_dict(self) -> dict[str, Any]:
        """JSON-able settings (what model.json records)."""
        return {**dataclasses.asdict(self), "retry_sides": list(self.retry_sides)}

    def describe(self) -> str:
        """One line for reports: e.g. "hog detector, 5-point aligned 150×150 chips"."""
        kind = "5-point aligned" if self.align else f"margin-{self.margin:g} cropped"
        return f"{self.detector} detector, {kind} {self.size}×{self.size} face crops"


def face_step(value: Any) -> FaceStep | None:
    """A FaceStep from a source option or model.json: None/false (no step), a detector name
    ("hog", "haar"), a mapping of FaceStep's fields, or a FaceStep.

    Raises:
        ConfigError: an unknown key or an invalid value (the message lists the valid ones).
    """
    if value is None or value is False:
        return None
    if isinstance(value, FaceStep):
        return value
    if isinstance(value, str):
        if value not in DETECTORS:
            raise ConfigError(
                f"face: {value!r} is not a detector: give 'hog' or 'haar', or a mapping such as "
                "{detector: haar, align: false}"
            )
        return FaceStep(detector=value)
    if isinstance(value, dict):
        names = [f.name for f in dataclasses.fields(FaceStep)]
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ConfigError(f"face: unknown key(s) {unknown}; its keys are {', '.join(names)}")
        return FaceStep(**value)
    raise ConfigError(
        f"face must be a detector name ('hog', 'haar') or a mapping of settings, not "
        f"{type(value).__name__}"
    )


@dataclass(frozen=True)
class FaceCrop:
    """One face of a photo: its box, the crop's pixels (size, size, 3) uint8 RGB, and dlib's
    5 landmarks (5, 2) when aligned."""

    box: FaceBox
    pixels: np.ndarray
    landmarks: np.ndarray | None = None


def face_crops(image: np.ndarray, step: FaceStep) -> list[FaceCrop]:
    """The faces of one photo as `step` crops them: the largest, or all, largest first; [] when
    the detector finds none.

    Args:
        image: (H, W, 3) RGB or (H, W) grayscale uint8 (grayscale is replicated to RGB).
    """
    rgb = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image
    rgb = np.ascontiguousarray(rgb)
    boxes = detect_faces(
        rgb,
        step.detector,
        max_side=step.max_side,
        retry_sides=step.retry_sides,
        every_scale=step.faces == "all",
    )
    if step.faces == "largest":
        main = main_face(boxes)
        boxes = [] if main is None else [main]
    return [_crop(rgb, box, step) for box in boxes]


def _crop(rgb: np.ndarray, box: FaceBox, step: FaceStep) -> FaceCrop:
    from siamese.faces import alignment

    if not step.align:
        return FaceCrop(box, alignment.margin_crop(rgb, box, step.size, step.margin))
    dlib_module = alignment.require_dlib()
    shape = alignment.landmarks(rgb, box)
    chip = dlib_module.get_face_chip(rgb, shape, size=step.size, padding=step.padding)
    return FaceCrop(box, chip, alignment.landmark_points(shape))


def no_face_reason(step: FaceStep) -> str:
    """Why a photo gave no crop, and what to try."""
    other = "haar" if step.detector == "hog" else "hog"
    return f"{NO_FACE} by the {step.detector} detector (check the photo, or try detector {other!r})"
