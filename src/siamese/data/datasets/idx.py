"""Reading IDX files, the format of MNIST and Fashion-MNIST (optionally gzip-compressed).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in row-major order.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from siamese.errors import DataError

# type code -> numpy dtype of the values (big-endian where it matters)
_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path, expected_ndim: int | None = None) -> np.ndarray:
    """The array stored in an IDX file (`.gz` files are decompressed in memory).

    Args:
        path: the file; a name ending in `.gz` is read as gzip.
        expected_ndim: when given, the number of dimensions the header must declare
            (3 for images, 1 for labels).
    Returns:
        The array, shape as declared in the header, native byte order; uint8 for
        MNIST-style images (N, H, W) and labels (N,).
    Raises:
        DataError: the file is missing, not gzip, has a wrong magic number, or its size
            does not match its header (truncated or padded).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err.strerror})") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(
                f"{path}: not a complete gzip file ({err}); the download was probably cut "
                "off: delete it and download it again (`siamese datasets download`)"
            ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(
            f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}, expected "
            "0000 followed by a type code such as 08 and the number of dimensions); check that "
            "this is the right file"
        )
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    if expected_ndim is not None and ndim != expected_ndim:
        kind = {1: "a labels file", 3: "an images file"}.get(expected_ndim, f"{expected_ndim}-d")
        raise DataError(
            f"{path}: the IDX header declares {ndim} dimensions, but {kind} has "
            f"{expected_ndim}; images and labels files may be swapped"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: the IDX header is cut off ({len(raw)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize + header
    if len(raw) != expected:
        raise DataError(
            f"{path}: the header declares shape {shape} ({expected} bytes) but the file has "
            f"{len(raw)} bytes; it is truncated or damaged: download it again"
        )
    values = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    # A copy: the buffer is immutable bytes, and tensors made from the array must be writable.
    return np.array(values, dtype=dtype.newbyteorder("="))
