"""The face step applied to image files and in-memory images, one crop per image: what
folder sources decode (in worker processes, so no torch here) and what named image datasets
pass through."""

from __future__ import annotations

import numpy as np
from PIL import Image

from siamese.data.image_files import BadImageError, decode_image, image_array
from siamese.faces.step import FaceStep, face_crops, no_face_reason


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
    image = pixels[0] if pixels.shape[0] == 1 else np.transpose(pixels, (1, 2, 0))
    crops = face_crops(image, step)
    if not crops:
        raise BadImageError(name, no_face_reason(step))
    chip = Image.fromarray(crops[0].pixels, "RGB")
    return image_array(chip, name, 3 if channels is None else channels, size, resize)
