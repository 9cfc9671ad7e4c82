"""Data sources, the `LabeledData` they produce, and splits."""

from siamese.data.glyphs import load_glyphs
from siamese.data.labeled import LabeledData
from siamese.data.splits import split_classes

__all__ = ["LabeledData", "load_glyphs", "split_classes"]
