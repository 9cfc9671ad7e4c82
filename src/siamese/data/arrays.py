"""`arrays:PATH`: feature vectors or sequences with labels, from .npz, .npy or CSV files.

Accepted layouts:
- `data.npz` holding the features (`x`, `X`, `features`, `embeddings` or `data`) and the labels
  (`y`, `labels`, `label`, `targets`); other 1-d arrays of the same length become metadata;
- `features.npy` with its labels in `labels=` (a .npy, or a text file of one label a line),
  else in a sibling `labels.npy` / `y.npy` / `<stem>_labels.npy`;
- a directory holding `x.npy` + `y.npy` (or `features.npy` + `labels.npy`);
- a CSV (or .tsv) file, one example a row, numeric feature columns plus a label column (named
  by `label_column`, else the column called label/labels/y/class/target, else the last one);
  a first row that is not numeric is the header.
Labels may be integers or strings; they become dense ids 0..C−1 in sorted order, and their
values the class names.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from siamese.data.labeled import LabeledData, warn_single_sample_classes
from siamese.errors import ConfigError, DataError

FEATURE_KEYS = ("x", "X", "features", "embeddings", "data")
LABEL_KEYS = ("y", "labels", "label", "targets")
_LABEL_COLUMNS = ("label", "labels", "y", "class", "target")


def load_arrays(
    path: Path, *, labels: Path | None = None, label_column: str | int | None = None
) -> LabeledData:
    """Features and labels from `path` (see the module docstring for the layouts).

    Returns:
        LabeledData with x (N, F) or (N, T, F) (float32, or uint8 when stored as uint8),
        y int64 (N,), classes = the label values as strings.
    Raises:
        DataError: missing file, unknown layout, counts that differ, non-finite or
            non-numeric features, pickled object arrays.
    """
    if not path.exists():
        raise DataError(f"{path}: not found (arrays:PATH takes a .npz, .npy, .csv or directory)")
    suffix = path.suffix.lower()
    meta: dict[str, np.ndarray] = {}
    if path.is_dir():
        features, label_values, sources = _from_directory(path)
    elif suffix == ".npz":
        features, label_values, meta = _from_npz(path)
        sources = (str(path), str(path))
    elif suffix == ".npy":
        label_path = labels or _sibling_labels(path)
        features, label_values = _load_npy(path), _load_labels(label_path)
        sources = (str(path), str(label_path))
    elif suffix in (".csv", ".tsv", ".txt"):
        features, label_values = _from_csv(path, label_column)
        sources = (str(path), str(path))
    else:
        raise DataError(
            f"{path}: unknown file type {suffix!r}; arrays:PATH takes a .npz, .npy, .csv file "
            "or a directory with x.npy and y.npy"
        )
    return _to_labeled(features, label_values, meta, sources)


def _load_npy(path: Path) -> np.ndarray:
    array = _read_numpy(path)
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: is an .npz archive, not a single .npy array")
    return array


def _read_numpy(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    """The array of a .npy file, or every array of a .npz file; never unpickles."""
    kind = path.suffix.lower() or ".npy"
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded
        with loaded as npz:
            return {name: npz[name] for name in npz.files}
    except ValueError as err:
        if "pickle" in str(err):
            raise DataError(
                f"{path}: holds Python objects, which are not loaded (unpickling runs code); "
                "save numeric or string arrays instead"
            ) from None
        raise DataError(f"{path}: not a readable {kind} file ({err})") from None
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable {kind} file ({err})") from None


def _load_labels(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        return _load_npy(path)
    try:
        return np.array(path.read_text().split())
    except OSError as err:
        raise DataError(f"{path}: cannot read the labels ({err.strerror})") from None


def _sibling_labels(path: Path) -> Path:
    candidates = [path.with_name(f"{path.stem}_labels.npy"), path.with_name("labels.npy")]
    candidates.append(path.with_name("y.npy"))
    for candidate in candidates:
        if candidate.is_file() and candidate != path:
            return candidate
    names = ", ".join(c.name for c in candidates)
    raise DataError(
        f"{path}: no labels found beside it (looked for {names}); pass the labels file "
        "(labels=... or --labels)"
    )


def _from_directory(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, str]]:
    for x_name, y_name in (("x.npy", "y.npy"), ("features.npy", "labels.npy")):
        if (path / x_name).is_file() and (path / y_name).is_file():
            x_path, y_path = path / x_name, path / y_name
            return _load_npy(x_path), _load_npy(y_path), (str(x_path), str(y_path))
    raise DataError(
        f"{path}: a directory for arrays:PATH must hold x.npy and y.npy (or features.npy and "
        "labels.npy)"
    )


def _from_npz(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    arrays = _read_numpy(path)
    if not isinstance(arrays, dict):
        raise DataError(f"{path}: is a single array, not an .npz archive of named arrays")
    x_key = next((k for k in FEATURE_KEYS if k in arrays), None)
    y_key = next((k for k in LABEL_KEYS if k in arrays), None)
    if x_key is None or y_key is None:
        raise DataError(
            f"{path}: holds the arrays {sorted(arrays)}; name the features one of "
            f"{list(FEATURE_KEYS)} and the labels one of {list(LABEL_KEYS)}"
        )
    n = arrays[y_key].shape[0] if arrays[y_key].ndim else -1
    meta = {
        k: v
        for k, v in arrays.items()
        if k not in (x_key, y_key) and v.ndim == 1 and v.shape[0] == n
    }
    return arrays[x_key], arrays[y_key], meta


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _from_csv(path: Path, label_column: str | int | None) -> tuple[np.ndarray, np.ndarray]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: Excel's BOM
            rows = [row for row in csv.reader(f, delimiter=delimiter) if row]
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the CSV file ({err})") from None
    if not rows:
        raise DataError(f"{path}: the file is empty")
    header = None
    if _has_header(rows, label_column):
        header, rows = [h.strip() for h in rows[0]], rows[1:]
    if not rows:
        raise DataError(f"{path}: only a header, no data rows")
    width = len(rows[0])
    if width < 2:
        raise DataError(
            f"{path}: line 1 has a single column; expected features and a label separated by "
            f"{delimiter!r} (name the file .tsv for tabs)"
        )
    column = _label_column_index(path, header, width, label_column)
    for line, row in enumerate(rows, start=2 if header else 1):
        if len(row) != width:
            raise DataError(f"{path}, line {line}: {len(row)} columns, expected {width}")
    table = np.array(rows, dtype=str)
    label_values = np.char.strip(table[:, column])
    feature_text = np.delete(table, column, axis=1)
    try:
        features = feature_text.astype(np.float32)
    except ValueError:
        bad = next(
            (r, c)
            for r, row in enumerate(feature_text)
            for c, v in enumerate(row)
            if not _is_number(v)
        )
        line = bad[0] + (2 if header else 1)
        raise DataError(
            f"{path}, line {line}: {str(feature_text[bad])!r} is not a number; every column but the "
            "label must be numeric"
        ) from None
    if np.all([_is_number(v) for v in label_values]):
        numeric = label_values.astype(np.float64)
        if np.all(numeric == np.round(numeric)):
            label_values = numeric.astype(np.int64)
    return features, label_values


def _has_header(rows: list[list[str]], label_column: str | int | None) -> bool:
    """Whether the first row names the columns rather than holding an example."""
    first = rows[0]
    if isinstance(label_column, str) or any(v.strip().lower() in _LABEL_COLUMNS for v in first):
        return True
    text_first = [not _is_number(v) for v in first]
    if len(rows) == 1:
        return any(text_first)
    text_second = [not _is_number(v) for v in rows[1]]
    # A data row has at most its label non-numeric; a header over string labels written by
    # pandas with numbered columns has a number where the data rows have text.
    return sum(text_first) > sum(text_second) or any(
        t2 and not t1 for t1, t2 in zip(text_first, text_second, strict=False)
    )


def _label_column_index(
    path: Path, header: list[str] | None, width: int, label_column: str | int | None
) -> int:
    if isinstance(label_column, int):
        if not -width <= label_column < width:
            raise ConfigError(
                f"{path}: label column {label_column} is out of range for {width} columns"
            )
        return label_column % width
    if isinstance(label_column, str):
        if header is None or label_column not in header:
            raise ConfigError(f"{path}: no column named {label_column!r}; the header is {header}")
        return header.index(label_column)
    if header is not None:
        for name in _LABEL_COLUMNS:
            if name in header:
                return header.index(name)
    return width - 1


def _to_labeled(
    features: np.ndarray,
    label_values: np.ndarray,
    meta: dict[str, np.ndarray],
    sources: tuple[str, str],
) -> LabeledData:
    if label_values.ndim == 2 and label_values.shape[1] == 1:
        label_values = label_values[:, 0]
    if label_values.ndim != 1:
        raise DataError(
            f"{sources[1]}: labels must be one per example, shape (N,); got {label_values.shape}"
        )
    if features.ndim < 2 or features.shape[0] == 0:
        raise DataError(
            f"{sources[0]}: features of shape {features.shape}; expected one row per example, "
            "(N, F) vectors or (N, T, F) sequences with N >= 1"
        )
    if features.ndim not in (2, 3) and features.dtype != np.uint8:
        raise DataError(
            f"{sources[0]}: features of shape {features.shape}; expected (N, F) vectors or "
            "(N, T, F) sequences (or uint8 images)"
        )
    if features.shape[0] != label_values.shape[0]:
        raise DataError(
            f"{sources[0]} has {features.shape[0]} examples but {sources[1]} has "
            f"{label_values.shape[0]} labels; they must match one to one"
        )
    if features.dtype.kind not in "biuf":
        raise DataError(f"{sources[0]}: features of type {features.dtype} are not numeric")
    if features.dtype != np.uint8:
        features = features.astype(np.float32)
        finite = np.isfinite(features.reshape(features.shape[0], -1)).all(axis=1)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            raise DataError(
                f"{sources[0]}: example {row} has NaN or infinite features; fix or drop it"
            )
    if label_values.dtype.kind not in "iuUS":
        raise DataError(
            f"{sources[1]}: labels of type {label_values.dtype}; use integers or strings"
        )
    names, y = np.unique(label_values, return_inverse=True)
    meta_tensors: dict[str, torch.Tensor] = {}
    meta_names: dict[str, list[str]] = {}
    for key, values in meta.items():
        if values.dtype.kind in "iub":
            meta_tensors[key] = torch.from_numpy(values.astype(np.int64))
        elif values.dtype.kind in "US":
            value_names, codes = np.unique(values, return_inverse=True)
            meta_tensors[key] = torch.from_numpy(codes.astype(np.int64))
            meta_names[key] = [str(v) for v in value_names]
    data = LabeledData(
        x=torch.from_numpy(np.ascontiguousarray(features)),
        y=torch.from_numpy(y.astype(np.int64)),
        classes=[str(v) for v in names],
        meta=meta_tensors,
        meta_names=meta_names,
    )
    warn_single_sample_classes(data, sources[1])
    return data
