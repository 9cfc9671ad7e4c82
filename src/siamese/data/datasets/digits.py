"""scikit-learn's bundled 8×8 handwritten digits (UCI optical digits test set, 1,797 images).

The CSV that ships inside scikit-learn is read directly, without importing scikit-learn.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from siamese.data.labeled import LabeledData
from siamese.errors import ConfigError, DataError

_CSV = Path("datasets") / "data" / "digits.csv.gz"


def digits_csv_path() -> Path:
    """Where scikit-learn keeps the digits CSV; a DataError when scikit-learn is missing."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise DataError(
            "the digits dataset ships with scikit-learn, which is not installed: "
            "pip install scikit-learn"
        )
    path = Path(spec.origin).parent / _CSV
    if not path.is_file():
        raise DataError(f"{path}: scikit-learn's digits file is missing; reinstall scikit-learn")
    return path


def load_digits(split: str = "all") -> LabeledData:
    """The 1,797 digits.

    Args:
        split: "all" (no official split).
    Returns:
        LabeledData with x uint8 (1797, 1, 8, 8), the 0..16 counts scaled to 0..255 (ink
        bright), y int64 (1797,) in 0..9.
    """
    if split != "all":
        raise ConfigError(f"digits has one split, 'all', not {split!r}")
    path = digits_csv_path()
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: cannot read scikit-learn's digits ({err})") from None
    if table.ndim != 2 or table.shape[1] != 65:
        raise DataError(f"{path}: expected 65 columns (64 pixels and a label), got {table.shape}")
    pixels = np.rint(table[:, :64] * (255 / 16)).astype(np.uint8)
    return LabeledData(
        x=torch.from_numpy(pixels.reshape(-1, 1, 8, 8)),
        y=torch.from_numpy(table[:, 64]),
        classes=[str(d) for d in range(10)],
    )
