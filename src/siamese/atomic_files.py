"""Writing files so that a reader never sees a partial one.

At the top level because three packages write such files: `training` (checkpoints, the run
directory), `models` (model files) and `evaluation` (reports)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Write `payload` to `path`: a temporary file in the same directory, fsync, then rename
    over `path`, then (on POSIX) fsync the directory so the rename itself survives a crash.
    An interruption leaves either the old file or the new one, never a mix.

    The temporary file is named `.{path.name}.<random>.tmp`; one is left behind only if the
    process dies between creating and renaming it.

    Raises:
        OSError: the directory cannot be written (the temporary file is removed).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """A folder written as a whole: the caller fills the yielded temporary folder (a sibling
    of `final`); when the block ends without an error it replaces `final` (an earlier folder
    there is removed only after the new one is in place); on an error it is removed and
    `final` stays as it was.

    Raises:
        OSError: the parent of `final` cannot be written.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".old"))
        os.replace(final, old / final.name)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _fsync_directory(final.parent)


def write_json_atomic(path: Path, value: Any) -> None:
    """Write `value` as indented JSON with sorted keys, atomically."""
    write_bytes_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Flush `directory`'s entries (a rename lives there, not in the file) to disk.

    Windows cannot open a directory this way, and some file systems (network, FUSE) refuse to
    fsync one; there the rename is as durable as the platform makes it, and we carry on.
    """
    if os.name != "posix":
        return
    try:
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise
    finally:
        os.close(dir_fd)
