"""Data: the named sources and folders/arrays (`sources`, `catalog`, one module per format),
download and checksums, the `LabeledData` they produce, splits (`splits`), batch transforms
(`transforms`) and how examples are grouped for training: P×K batches (`pk_sampler`),
offline pairs and triplets (`tuples`), the pair tutorials' protocol (`pair_protocol`).
May import `errors` and `atomic_files` only: data knows nothing of models or training.

Names are imported on first use: decoding worker processes import
`siamese.data.image_files`, which must not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_PUBLIC: dict[str, str] = {
    "DataSplit": "siamese.data.splits",
    "LabeledData": "siamese.data.labeled",
    "SkippedFile": "siamese.data.labeled",
    "load_dataset": "siamese.data.sources",
    "load_glyphs": "siamese.data.glyphs",
    "split_classes": "siamese.data.splits",
    "split_data": "siamese.data.splits",
}
__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from siamese.data.glyphs import load_glyphs
    from siamese.data.labeled import LabeledData, SkippedFile
    from siamese.data.sources import load_dataset
    from siamese.data.splits import DataSplit, split_classes, split_data


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'siamese.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
