"""The face step (`siamese.faces.preprocessing`) applied to image files and to images in memory, one
crop per image: what folder sources decode (in worker processes, so no torch at import) and
what named image datasets (ORL) pass through."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from siamese.data.image_files import BadImageError, decode_image, image_array
from siamese.errors import DataError
from siamese.faces.preprocessing import FaceStep, face_crops, no_face_reason

if TYPE_CHECKING:
    from siamese.data.labeled import LabeledData

_LISTED = 10


def crop_face_files(
    paths: list[str],
    step: FaceStep,
    channels: int | None,
    size: tuple[int, int] | None,
    resize: str,
    max_pixels: int,
) -> list[np.ndarray | BadImageError]:
    """The largest face of each file as a (C, H, W) uint8 crop, or the error in its place (a
    file that cannot be decoded, or in which the detector finds no face).

    Args:
        paths: image files.
        step: the face step (its `faces` setting is ignored: one crop per file).
        channels: 1 or 3 (None: 3, the crops are RGB).
        size: (H, W) to resize the crop to; None keeps the step's size.
        resize: how to reach `size` ("stretch", "crop", "pad").
        max_pixels: larger photos are refused unread.
    """
    results: list[np.ndarray | BadImageError] = []
    for path in paths:
        try:
            results.append(
                crop_face_image(
                    decode_image(path, 3, None, "stretch", max_pixels),
                    path,
                    step,
                    channels,
                    size,
                    resize,
                )
            )
        except BadImageError as err:
            results.append(err)
    return results


def crop_face_image(
    pixels: np.ndarray,
    name: str,
    step: FaceStep,
    channels: int | None,
    size: tuple[int, int] | None,
    resize: str,
) -> np.ndarray:
    """The largest face of one (C, H, W) uint8 image as a (C', H', W') uint8 crop.

    Raises:
        BadImageError: no face found (the reason says what to try).
    """
    crops = face_crops(_height_width_channels(pixels), step)
    if not crops:
        raise BadImageError(name, no_face_reason(step))
    return _model_pixels(crops[0].pixels, name, channels, size, resize)


def every_face_crop(
    pixels: np.ndarray,
    name: str,
    step: FaceStep,
    channels: int | None,
    size: tuple[int, int] | None,
    resize: str,
    faces: str = "all",
) -> list[tuple[list[float], np.ndarray]]:
    """The faces of one (C, H, W) uint8 image, largest first: each one's box [left, top, right,
    bottom] in the image's pixels and its (C', H', W') uint8 crop; [] when none is found.

    Args:
        faces: "all", or "largest" (the main face, chosen as the face step chooses it).
    """
    crops = face_crops(_height_width_channels(pixels), dataclasses.replace(step, faces=faces))
    return [
        (crop.box.as_list(), _model_pixels(crop.pixels, name, channels, size, resize))
        for crop in crops
    ]


def _height_width_channels(pixels: np.ndarray) -> np.ndarray:
    """(C, H, W) → (H, W) for gray, (H, W, 3) for colour: what the detectors read."""
    return pixels[0] if pixels.shape[0] == 1 else np.transpose(pixels, (1, 2, 0))


def _model_pixels(
    chip: np.ndarray, name: str, channels: int | None, size: tuple[int, int] | None, resize: str
) -> np.ndarray:
    """A (S, S, 3) RGB crop as (C, H, W) uint8 at the requested channels and size."""
    return image_array(
        Image.fromarray(chip, "RGB"), name, 3 if channels is None else channels, size, resize
    )


def with_face_crops(data: LabeledData, step: FaceStep, source: str) -> LabeledData:
    """Each image of `data` replaced by its largest face, cropped or aligned by `step`.

    Args:
        data: images x uint8 (N, C, H, W), C = 1 or 3.
        step: the face step; images without a face stop the load (on_no_face "error") or
            are left out and listed in `skipped` ("skip").
        source: the dataset's name, for messages.
    Returns:
        LabeledData with x uint8 (M, 3, size, size) RGB crops (grayscale photos give gray
        RGB), M ≤ N, the other fields subset alike.
    Raises:
        DataError: images without a face with on_no_face "error" (every one is listed).
    """
    if data.x.ndim != 4 or data.x.shape[1] not in (1, 3) or str(data.x.dtype) != "torch.uint8":
        raise DataError(
            f"{source}: a face step needs uint8 images (N, 1 or 3, H, W), not "
            f"{data.x.dtype} {tuple(data.x.shape)}"
        )
    names = data.paths or [f"image {i + 1}" for i in range(len(data))]
    crops, keep, missing = [], [], []
    pixels = data.x.numpy()
    for i, name in enumerate(names):
        try:
            crops.append(crop_face_image(pixels[i], name, step, 3, None, "stretch"))
            keep.append(i)
        except BadImageError as err:
            missing.append((name, err.reason))
    if missing and step.on_no_face == "error":
        listed = ", ".join(name for name, _ in missing[:_LISTED])
        more = f" and {len(missing) - _LISTED} more" if len(missing) > _LISTED else ""
        raise DataError(
            f"{source}: the {step.detector} detector found no face in {len(missing)} of "
            f"{len(names)} images ({listed}{more}): try the other detector, or set the face "
            "step's on_no_face to 'skip' to leave them out (listed)"
        )
    if not keep:
        raise DataError(f"{source}: the {step.detector} detector found no face in any image")
    import torch

    from siamese.data.labeled import SkippedFile

    index = torch.tensor(keep, dtype=torch.int64)
    kept = data.subset(index)
    return dataclasses.replace(
        kept,
        x=torch.from_numpy(np.stack(crops)),
        skipped=[*data.skipped, *(SkippedFile(name, reason) for name, reason in missing)],
    )
