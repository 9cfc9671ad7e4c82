"""Seeded splits of a labelled set, and the record of a split kept in a run directory.

- by class (open set, the default for verification and one-shot): no class is in two parts,
  so what a model is tested on it never saw;
- by sample (closed set), stratified: every class is cut in the same proportions;
- the dataset's own split (MNIST train/test, Omniglot background/evaluation) is a
  `load_dataset` argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from siamese.data.labeled import LabeledData
from siamese.errors import ConfigError

SplitMethod = Literal["class", "sample"]


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


@dataclass
class DataSplit:
    """The parts of a split, and how they were made.

    Attributes:
        parts: name -> the examples of that part.
        method: "class" (class-disjoint) or "sample" (stratified by class).
        seed: the seed of the split.
        indices: name -> (n_i,) int64 indices of the part's examples in the split data.

    Example:
        >>> from siamese import load_dataset, split_data
        >>> split = split_data(load_dataset("digits"), {"train": 0.8, "val": 0.2}, seed=0)
        >>> split.method, split.seed, sorted(split.indices)
        ('class', 0, ['train', 'val'])
        >>> split.record()["parts"]["val"]
        {'examples': 358, 'classes': 2, 'class_ids': [2, 6], 'class_names': ['2', '6']}
    """

    parts: dict[str, LabeledData]
    method: SplitMethod
    seed: int
    indices: dict[str, torch.Tensor]

    def record(self) -> dict[str, Any]:
        """A JSON-ready description: method, seed, and each part's classes and size (and, for
        a split by sample, its example indices), enough to rebuild the split exactly."""
        parts: dict[str, Any] = {}
        for name, part in self.parts.items():
            ids = part.class_ids.tolist()
            entry: dict[str, Any] = {
                "examples": len(part),
                "classes": len(ids),
                "class_ids": ids,
            }
            if part.classes:
                entry["class_names"] = [part.classes[i] for i in ids]
            if self.method == "sample":
                entry["indices"] = self.indices[name].tolist()
            parts[name] = entry
        return {"method": self.method, "seed": self.seed, "parts": parts}


def split_data(
    data: LabeledData,
    parts: Mapping[str, float],
    by: SplitMethod = "class",
    seed: int = 0,
) -> DataSplit:
    """Split `data` into named parts, seeded.

    Args:
        data: the examples.
        parts: part name -> fraction (> 0; the fractions sum to 1), e.g.
            {"train": 0.7, "val": 0.1, "test": 0.2}. By class, a fraction is of the classes
            (rounded, every part gets at least one); by sample, of each class's examples.
        by: "class" for class-disjoint parts (open set), "sample" for stratified parts
            sharing the classes (closed set).
        seed: the seed of the permutation.
    Returns:
        DataSplit with the parts in the order given.

    Example:
        >>> from siamese import load_dataset, split_data
        >>> digits = load_dataset("digits")
        >>> split = split_data(digits, {"train": 0.6, "val": 0.2, "test": 0.2}, by="class", seed=0)
        >>> {name: part.class_ids.tolist() for name, part in split.parts.items()}
        {'train': [1, 3, 4, 5, 7, 9], 'val': [0, 8], 'test': [2, 6]}
        >>> closed = split_data(digits, {"train": 0.8, "test": 0.2}, by="sample", seed=0)
        >>> {name: len(part) for name, part in closed.parts.items()}
        {'train': 1438, 'test': 359}
        >>> closed.parts["test"].class_ids.tolist() == list(range(10))  # every class in each part
        True
    """
    names = list(parts)
    fractions = torch.tensor([float(parts[n]) for n in names], dtype=torch.float64)
    if len(names) < 2 or (fractions <= 0).any() or abs(float(fractions.sum()) - 1) > 1e-6:
        raise ConfigError(
            f"split parts {dict(parts)}: give two or more parts with fractions > 0 that sum to 1"
        )
    if by == "class":
        indices = _by_class(data, names, fractions, seed)
    elif by == "sample":
        indices = _by_sample(data, names, fractions, seed)
    else:
        raise ConfigError(f"split by {by!r}: choose 'class' (open set) or 'sample' (closed set)")
    return DataSplit(
        parts={name: data.subset(index) for name, index in indices.items()},
        method=by,
        seed=seed,
        indices=indices,
    )


def _by_class(
    data: LabeledData, names: list[str], fractions: torch.Tensor, seed: int
) -> dict[str, torch.Tensor]:
    class_ids = data.class_ids
    total = int(class_ids.numel())
    if total < len(names):
        raise ConfigError(
            f"cannot split {total} classes into {len(names)} class-disjoint parts; use fewer "
            "parts or split by sample"
        )
    sizes = _apportion(fractions.tolist(), total)
    groups = split_classes(class_ids, sizes[:-1], seed=seed)
    return {
        name: torch.isin(data.y, group).nonzero().squeeze(1)
        for name, group in zip(names, groups, strict=True)
    }


def _apportion(fractions: list[float], total: int) -> list[int]:
    """`total` items in parts proportional to `fractions`, each part at least one
    (largest remainders; requires total >= len(fractions))."""
    exact = [f * total for f in fractions]
    sizes = [max(1, int(e)) for e in exact]
    while sum(sizes) < total:  # give the rest to the largest remainders
        i = max(range(len(sizes)), key=lambda j: exact[j] - sizes[j])
        sizes[i] += 1
    while sum(sizes) > total:  # the minimum of one overshot: take from the largest parts
        i = max((j for j in range(len(sizes)) if sizes[j] > 1), key=lambda j: sizes[j] - exact[j])
        sizes[i] -= 1
    return sizes


def _by_sample(
    data: LabeledData, names: list[str], fractions: torch.Tensor, seed: int
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = len(data)
    # Sort by (class, random key): each example's rank within its class, then its part from
    # where that rank falls in the class's cumulative fractions.
    order = torch.randperm(n, generator=g)
    order = order[torch.sort(data.y[order], stable=True).indices]
    counts = torch.bincount(data.y, minlength=len(data.classes))
    starts = torch.cumsum(counts, 0) - counts
    sorted_labels = data.y[order]
    rank = torch.arange(n) - starts[sorted_labels]
    position = (rank.double() + 0.5) / counts[sorted_labels].double()
    part = torch.searchsorted(torch.cumsum(fractions, 0), position, right=True)
    part = part.clamp_max(len(names) - 1)
    return {name: order[part == p].sort().values for p, name in enumerate(names)}
