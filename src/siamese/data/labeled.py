"""`LabeledData`: the one form every data source produces, and `ImageSource`, the protocol its
images follow when they are not one tensor in memory (a folder streamed from its files).

Code that meets both kinds of `x` goes through the few functions here (`take`, `in_memory`)
or through `siamese.data.batches.load_batches`, which reads either in batches; no
other module needs to know which kind it holds.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, runtime_checkable

import numpy as np
import torch

from siamese.errors import DataError


@runtime_checkable
class ImageSource(Protocol):
    """uint8 images (N, C, H, W) kept outside memory and decoded on demand: what a
    `LabeledData.x` is when its images would not fit in memory as one tensor.

    It answers what a tensor would of its shape (`shape`, `dtype`, `len`), gives decoded
    images when indexed (`x[index]` → uint8 (B, C, H, W) tensor), and makes subsets and
    converted views without decoding anything (`take`, `fitted`). `decode_batch` is what the
    batch readers' worker processes call.
    """

    dtype: torch.dtype

    @property
    def shape(self) -> torch.Size:
        """(N, C, H, W)."""
        ...

    @property
    def nbytes(self) -> int:
        """Bytes of every image decoded at once."""
        ...

    def __len__(self) -> int: ...

    def __getitem__(self, key: Any) -> torch.Tensor: ...

    def take(self, index: Any) -> ImageSource:
        """The images at `index` ((M,) int64, a slice or a list), nothing decoded."""
        ...

    def fitted(self, shape: Sequence[int]) -> ImageSource:
        """These images converted to `shape` (C, H, W) as they are decoded."""
        ...

    def decode_batch(self, positions: np.ndarray) -> torch.Tensor:
        """The images at `positions` ((B,) int64) decoded: uint8 (B, C, H, W)."""
        ...


Inputs: TypeAlias = "torch.Tensor | ImageSource"
"""A `LabeledData.x`: a tensor in memory, or images decoded on demand."""


def take(x: Inputs, index: torch.Tensor) -> Inputs:
    """The examples of `x` at `index` ((M,) int64): a tensor is indexed, an image source
    gives a subset that still decodes on demand."""
    return x.take(index) if isinstance(x, ImageSource) else x[index]


def decoded_size(nbytes: int) -> str:
    """`nbytes` for a message: "2.3 GiB", or "120 MiB" below a GiB."""
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.0f} MiB"


def in_memory(x: Inputs, what: str) -> torch.Tensor:
    """`x` itself when it is a tensor; for an image source, a DataError saying that `what`
    (e.g. "rotated_classes") needs every image in memory and what to do instead."""
    if isinstance(x, ImageSource):
        raise DataError(
            f"{what} needs every image in memory, but these {len(x):,} images are streamed "
            f"from their files ({decoded_size(x.nbytes)} decoded): load the folder with "
            "stream=False (data.options.stream: false) if it fits in memory"
        )
    return x


@dataclass(frozen=True)
class SkippedFile:
    """A file a source left out (with `on_bad_file="skip"`), and why.

    Example:
        >>> from siamese.data import SkippedFile
        >>> SkippedFile("ann/3.jpg", "not an image: cannot identify image file")
        SkippedFile(path='ann/3.jpg', reason='not an image: cannot identify image file')
    """

    path: str
    reason: str


@dataclass
class LabeledData:
    """Examples with integer class labels.

    Attributes:
        x: uint8 images (N, C, H, W), ink/foreground bright on a dark background for the
            character datasets; (N, T, F) sequences or (N, F) vectors (any dtype) for arrays.
            For a folder too large to decode up front, an `ImageSource` of that shape
            (`siamese.data.folders.streamed.StreamedImages`): indexing it decodes those
            files; `subset` keeps it on disk; read it in batches with
            `siamese.data.batches.load_batches`.
        y: int64 labels (N,), indices into `classes`.
        classes: the name of every class id (subsets keep the full list).
        meta: per-example int64 tensors (N,), e.g. `writer` for glyphs, `drawer` for Omniglot.
        meta_names: for a categorical `meta` entry, the name of each of its values
            (`meta_names["alphabet"][meta["alphabet"][i]]` is example i's alphabet).
        paths: where each example came from (a file, or an archive member), or None.
        skipped: the files the source could not use and left out, with the reason.

    Example:
        >>> import torch
        >>> from siamese.data import LabeledData
        >>> data = LabeledData(
        ...     x=torch.zeros(6, 1, 8, 8, dtype=torch.uint8),
        ...     y=torch.tensor([0, 0, 1, 1, 2, 2]),
        ...     classes=["ann", "bob", "cy"],
        ... )
        >>> len(data), data.class_counts().tolist()
        (6, [2, 2, 2])
        >>> part = data.with_classes(torch.tensor([0, 2]))
        >>> part.y.tolist(), part.classes  # labels and class names are kept
        ([0, 0, 2, 2], ['ann', 'bob', 'cy'])
        >>> LabeledData(torch.zeros(5, 3), torch.zeros(4, dtype=torch.long), ["a"])
        Traceback (most recent call last):
        ...
        ValueError: 5 examples but 4 labels
    """

    x: Inputs
    y: torch.Tensor
    classes: list[str]
    meta: dict[str, torch.Tensor] = field(default_factory=dict)
    meta_names: dict[str, list[str]] = field(default_factory=dict)
    paths: list[str] | None = None
    skipped: list[SkippedFile] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = self.y.shape[0]
        if self.x.shape[0] != n:
            raise ValueError(f"{self.x.shape[0]} examples but {n} labels")
        for name, values in self.meta.items():
            if values.shape[0] != n:
                raise ValueError(f"meta {name!r} has {values.shape[0]} rows, expected {n}")
        unknown = set(self.meta_names) - set(self.meta)
        if unknown:
            raise ValueError(f"meta_names {sorted(unknown)} name no meta entry")
        if self.paths is not None and len(self.paths) != n:
            raise ValueError(f"{len(self.paths)} paths, expected {n}")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def class_ids(self) -> torch.Tensor:
        """(C',) sorted ids of the classes present in this data."""
        return torch.unique(self.y)

    def class_counts(self) -> torch.Tensor:
        """(len(classes),) int64: how many examples each class id has here (0 for absent)."""
        return torch.bincount(self.y, minlength=len(self.classes))

    def subset(self, index: torch.Tensor) -> LabeledData:
        """The examples at `index` ((M,) int64 or (N,) bool), labels unchanged."""
        if index.dtype == torch.bool:
            index = index.nonzero().squeeze(1)
        return LabeledData(
            x=take(self.x, index),
            y=self.y[index],
            classes=self.classes,
            meta={name: values[index] for name, values in self.meta.items()},
            meta_names=self.meta_names,
            paths=None if self.paths is None else [self.paths[i] for i in index.tolist()],
            skipped=self.skipped,
        )

    def with_classes(self, class_ids: torch.Tensor) -> LabeledData:
        """The examples whose label is in `class_ids` ((K,) int64)."""
        return self.subset(torch.isin(self.y, class_ids))


def warn_single_sample_classes(data: LabeledData, source: str, listed: int = 10) -> None:
    """Warn (UserWarning) when classes of `data` have exactly one example: they can never form
    a positive pair, so a sampler never draws them. `source` names where the data came from."""
    counts = data.class_counts()
    single = [data.classes[i] for i in (counts == 1).nonzero().flatten().tolist()]
    if single:
        names = ", ".join(single[:listed]) + (" ..." if len(single) > listed else "")
        warnings.warn(
            f"{source}: {len(single)} class(es) have a single example, so they can't form "
            f"positive pairs: {names}. Add examples to them, or remove them",
            UserWarning,
            stacklevel=3,
        )
