"""Rotations as new classes: the class augmentation of Prototypical Networks (Snell et al.
2017) and Vinyals et al. (2016) for Omniglot, where a character turned by 90°, 180° or 270° is
a character of its own."""

from __future__ import annotations

import torch

from siamese.data.labeled import LabeledData, in_memory
from siamese.errors import ConfigError

ROTATIONS = (0, 90, 180, 270)


def with_rotated_classes(data: LabeledData) -> LabeledData:
    """Every example four times, turned by 0°, 90°, 180° and 270°, each turn a new class.

    Args:
        data: square images x (N, C, S, S), y (N,) in [0, C_classes).
    Returns:
        LabeledData of 4N examples: x (4N, C, S, S), rotation-major (the originals first,
        unchanged), y + r · C_classes for turn r, classes "<name>" then "<name> @90°" etc.,
        meta repeated plus meta["rotation"] (0, 90, 180, 270), paths with "@90" etc.
    Raises:
        ConfigError: images that are not square (a turn would change their shape).
    """
    in_memory(data.x, "rotated_classes")
    if data.x.ndim != 4 or data.x.shape[-1] != data.x.shape[-2]:
        raise ConfigError(
            f"rotated_classes needs square images (N, C, S, S), got shape {tuple(data.x.shape)}"
        )
    n_classes = len(data.classes)
    x = torch.cat([torch.rot90(data.x, k, dims=(-2, -1)) for k in range(4)])
    y = torch.cat([data.y + k * n_classes for k in range(4)])
    classes = [
        name if k == 0 else f"{name} @{ROTATIONS[k]}°" for k in range(4) for name in data.classes
    ]
    meta = {name: values.repeat(4) for name, values in data.meta.items()}
    meta["rotation"] = torch.tensor(ROTATIONS).repeat_interleave(len(data))
    paths = None
    if data.paths is not None:
        paths = [p if k == 0 else f"{p}@{ROTATIONS[k]}" for k in range(4) for p in data.paths]
    return LabeledData(x, y, classes, meta, dict(data.meta_names), paths, list(data.skipped))
