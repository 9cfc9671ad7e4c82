"""`LabeledData`: the one in-memory form every data source produces."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class LabeledData:
    """Examples with integer class labels.

    Attributes:
        x: uint8 images (N, C, H, W) (or (N, T, F) sequences, (N, F) vectors).
        y: int64 labels (N,), indices into `classes`.
        classes: the name of every class id (subsets keep the full list).
        meta: per-example int64 tensors (N,), e.g. `writer` for glyphs.
    """

    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    meta: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"{self.x.shape[0]} examples but {self.y.shape[0]} labels")
        for name, values in self.meta.items():
            if values.shape[0] != self.y.shape[0]:
                raise ValueError(
                    f"meta {name!r} has {values.shape[0]} rows, expected {self.y.shape[0]}"
                )

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def class_ids(self) -> torch.Tensor:
        """(C',) sorted ids of the classes present in this data."""
        return torch.unique(self.y)

    def subset(self, index: torch.Tensor) -> LabeledData:
        """The examples at `index` ((M,) int64 or (N,) bool), labels unchanged."""
        return LabeledData(
            x=self.x[index],
            y=self.y[index],
            classes=self.classes,
            meta={name: values[index] for name, values in self.meta.items()},
        )

    def with_classes(self, class_ids: torch.Tensor) -> LabeledData:
        """The examples whose label is in `class_ids` ((K,) int64)."""
        return self.subset(torch.isin(self.y, class_ids))
