"""Seeded splits of a labelled set."""

from __future__ import annotations

import torch

from siamese.errors import ConfigError


def split_classes(class_ids: torch.Tensor, sizes: list[int], seed: int = 0) -> list[torch.Tensor]:
    """Partition classes into disjoint groups (open-set splits), seeded.

    The groups are taken in order from one seeded permutation; the last group gets every class
    the sizes do not claim.

    Args:
        class_ids: (C,) int64 class ids.
        sizes: the sizes of all groups but the last.
        seed: permutation seed.
    Returns:
        len(sizes) + 1 sorted (c_i,) int64 tensors.
    """
    total = int(class_ids.numel())
    if any(s < 0 for s in sizes) or sum(sizes) >= total:
        raise ConfigError(
            f"cannot split {total} classes into groups of {sizes} and leave any for the last group"
        )
    g = torch.Generator().manual_seed(seed)
    shuffled = class_ids[torch.randperm(total, generator=g)]
    groups = list(torch.split(shuffled, [*sizes, total - sum(sizes)]))
    return [group.sort().values for group in groups]
