"""Data sources, the `LabeledData` they produce, splits and batch transforms."""

from __future__ import annotations

from typing import Any

from siamese.data.labeled import LabeledData, SkippedFile
from siamese.data.sources import load_dataset
from siamese.data.splits import DataSplit, split_classes, split_data

__all__ = [
    "DataSplit",
    "LabeledData",
    "SkippedFile",
    "load_dataset",
    "load_glyphs",
    "split_classes",
    "split_data",
]


def __getattr__(name: str) -> Any:
    # glyphs imports matplotlib's font machinery: only when asked for
    if name == "load_glyphs":
        from siamese.data.glyphs import load_glyphs

        return load_glyphs
    raise AttributeError(f"module 'siamese.data' has no attribute {name!r}")
