"""Where generated data is cached, and atomic writes into that cache."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from siamese.atomic_files import write_bytes_atomic


def cache_dir() -> Path:
    """The cache directory: `$SIAMESE_CACHE_DIR`, else `$XDG_CACHE_HOME/siamese/cache`, else
    `~/.cache/siamese/cache` (beside, not among, the datasets of the default data directory)."""
    explicit = os.environ.get("SIAMESE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "siamese" / "cache"


def source_cache_path(kind: str, source: Path, options: str = "", suffix: str = "") -> Path:
    """Where to cache what was derived from the file `source` (a decoded or extracted copy).

    The name is `<source identity>-<source version>`: the identity hashes the resolved path
    and `options`, the version the file's size, modification and change times and inode, so
    that a replaced or rewritten file gets a new entry. Entries of older versions of the
    same source are removed here, so the cache holds one version per source.
    """
    identity = _digest(f"{source.resolve()}|{options}")
    version = file_version(source)
    folder = cache_dir() / kind
    current = folder / f"{identity}-{version}{suffix}"
    if folder.is_dir():
        for old in folder.glob(f"{identity}-*"):
            if old != current and not old.name.startswith("."):
                if old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink(missing_ok=True)
    return current


def file_version(path: Path) -> str:
    """A short hash of what changes when the file at `path` is rewritten or replaced: size,
    modification and change times, inode (a copy that keeps the old date still gets a new
    change time and inode)."""
    stat = path.stat()
    return _digest(f"{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}|{stat.st_ino}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
