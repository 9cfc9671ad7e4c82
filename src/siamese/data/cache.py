"""Where generated data is cached, and atomic writes into that cache."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np

from siamese.atomic_write import write_bytes_atomic


def cache_dir() -> Path:
    """The cache directory: `$SIAMESE_CACHE_DIR`, else `$XDG_CACHE_HOME/siamese`, else
    `~/.cache/siamese`."""
    explicit = os.environ.get("SIAMESE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "siamese"


def save_npz_atomic(path: Path, /, **arrays: np.ndarray) -> bool:
    """Write `arrays` to `path` so that a reader never sees a partial file.

    A cache that cannot be written is not an error (the data is simply generated
    again next time): this warns and returns False.
    """
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, buffer.getvalue())
    except OSError as err:
        warnings.warn(
            f"could not write the cache file {path} ({err}); continuing without it", stacklevel=2
        )
        return False
    return True


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None if it is missing or unreadable (never unpickles)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError):
        return None
