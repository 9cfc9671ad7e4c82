"""The face step on a dataset already in memory (a named image dataset such as ORL)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from siamese.data.image_files import BadImageError
from siamese.data.labeled import LabeledData, SkippedFile
from siamese.errors import DataError
from siamese.faces.face_files import crop_face_image
from siamese.faces.step import FaceStep

_LISTED = 10


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
    if data.x.ndim != 4 or data.x.shape[1] not in (1, 3) or data.x.dtype != torch.uint8:
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
            missing.append(SkippedFile(name, err.reason))
    if missing and step.on_no_face == "error":
        listed = ", ".join(m.path for m in missing[:_LISTED])
        more = f" and {len(missing) - _LISTED} more" if len(missing) > _LISTED else ""
        raise DataError(
            f"{source}: the {step.detector} detector found no face in {len(missing)} of "
            f"{len(names)} images ({listed}{more}): try the other detector, or set the face "
            "step's on_no_face to 'skip' to leave them out (listed)"
        )
    if not keep:
        raise DataError(f"{source}: the {step.detector} detector found no face in any image")
    index = torch.tensor(keep, dtype=torch.int64)
    kept = data.subset(index)
    return dataclasses.replace(
        kept, x=torch.from_numpy(np.stack(crops)), skipped=[*data.skipped, *missing]
    )
