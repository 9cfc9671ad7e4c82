"""Downloading files so that a reader never sees a partial or corrupt one.

A download streams into a hidden `.part` file next to its destination, checks the length
the server announced and the expected checksum, and only then renames the file into place.
Any failure (network, timeout, cut-off transfer, wrong checksum, Ctrl-C) removes the
temporary file and leaves the destination as it was.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, TypeVar

from siamese import __version__
from siamese.errors import ConfigError, DataError

# Large enough to keep per-call overhead small, small enough for a responsive progress bar.
_CHUNK = 1 << 16

# Hex digest lengths double as a check for truncated or mistyped checksums.
_HEX_LENGTHS = {"sha256": 64, "md5": 32}


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of the file at `path` with the hashlib `algorithm` ("sha256", "md5", ...),
    read in chunks so that large files do not have to fit in memory.

    Raises:
        ConfigError: `algorithm` is not one hashlib knows.
        OSError: the file cannot be read.
    """
    hasher = _new_hasher(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def verify_checksum(path: Path, checksum: str) -> None:
    """Check that the file at `path` has the digest `checksum`, written "sha256:<hex>" or
    "md5:<hex>" (some official sources publish only md5).

    Raises:
        ConfigError: `checksum` is not in one of those forms.
        DataError: the file is missing, unreadable, or its digest differs; the message names
            the file, both digests and what to do.
    """
    algorithm, expected = _parse_checksum(checksum)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file; download it again")
    try:
        actual = file_digest(path, algorithm)
    except OSError as err:
        raise DataError(f"cannot read {path} to check its {algorithm}: {err}") from err
    if actual != expected:
        raise DataError(
            f"{path} is corrupt or not the expected file: its {algorithm} is {actual}, "
            f"expected {expected}. Delete it and download it again, or get it from the "
            "official source."
        )


def download_file(
    urls: Sequence[str],
    dest: Path,
    checksum: str | None,
    *,
    timeout: float = 60,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download a file to `dest`, trying each of `urls` (mirrors) once, in order, and return
    `dest`.

    The bytes go to a temporary file in `dest`'s directory (".<name>.<random>.part"); it
    replaces `dest` only once the whole announced length arrived and, when `checksum` is
    given ("sha256:<hex>" or "md5:<hex>"), the digest matches. A mirror that fails in any
    way, a wrong checksum included, is reported and the next one is tried. On any failure,
    Ctrl-C included, the temporary file is removed and `dest` is left as it was.

    If `dest` already exists it is returned without downloading when it matches `checksum`,
    or when `checksum` is None (a file this function wrote is always complete). Parent
    directories of `dest` are created.

    Args:
        urls: mirrors of the same file; a single string counts as one URL.
        dest: where the file is saved.
        checksum: the expected digest, or None to accept whatever a mirror serves in full.
        timeout: seconds to wait for the connection and for each read; a slow but steady
            transfer is not cut off.
        progress: called after each chunk with the bytes received so far from the current
            mirror and the announced total (None when the server sends no length). The
            count starts again from the beginning when the next mirror is tried.

    Raises:
        ConfigError: `urls` is empty or `checksum` is malformed.
        DataError: every mirror failed (the message lists each URL with its reason and
            says where to put a file downloaded by hand), `dest` is a directory, or the
            destination directory cannot be written.
    """
    if isinstance(urls, str):
        urls = [urls]
    if not urls:
        raise ConfigError(f"no URL given to download {dest}")
    expected = _parse_checksum(checksum) if checksum is not None else None
    dest = Path(dest)

    stale = False
    if dest.exists():
        if not dest.is_file():
            raise DataError(f"cannot download to {dest}: it exists and is not a file")
        if expected is None or _matches(dest, *expected):
            return dest
        # Kept until a good copy replaces it, so a failed download loses nothing.
        stale = True

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the directory {dest.parent}: {err}") from err

    failures: list[tuple[str, str]] = []
    for url in urls:
        reason = _download_once(url, dest, expected, timeout, progress)
        if reason is None:
            return dest
        failures.append((url, reason))

    lines = [f"could not download {dest.name} from any of its {len(urls)} URL(s):"]
    lines += [f"  {url}: {reason}" for url, reason in failures]
    if stale:
        lines.append(
            f"The existing {dest} does not match the expected checksum; it was left as it was."
        )
    by_hand = f"Download the file by hand from one of these URLs and save it as {dest.resolve()}"
    if expected is not None:
        by_hand += f" (its {expected[0]} must be {expected[1]})"
    lines.append(by_hand + ".")
    raise DataError("\n".join(lines))


class _MirrorFailed(Exception):
    """One mirror did not deliver the file; the message is the reason shown to the user."""


class _WriteFailed(Exception):
    """The temporary file could not be written: a local problem no other mirror can fix."""


def _download_once(
    url: str,
    dest: Path,
    expected: tuple[str, str] | None,
    timeout: float,
    progress: Callable[[int, int | None], None] | None,
) -> str | None:
    """Fetch `url` into `dest` atomically: None on success, else why this mirror failed."""
    try:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as err:
        raise DataError(f"cannot write a temporary file in {dest.parent}: {err}") from err
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            hasher = _new_hasher(expected[0]) if expected is not None else None
            try:
                _fetch(url, f, hasher, timeout, progress)
            except _MirrorFailed as err:
                return str(err)
            if expected is not None and hasher is not None:
                actual = hasher.hexdigest()
                if actual != expected[1]:
                    return (
                        f"checksum mismatch: the {expected[0]} of the file served is {actual}, "
                        f"expected {expected[1]}"
                    )
            try:
                f.flush()
                os.fsync(f.fileno())
            except OSError as err:
                raise _WriteFailed(err) from err
        try:
            # mkstemp makes the file private (0600); a dataset in a shared data directory
            # should be readable by everyone, like a file any other tool writes.
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except OSError as err:
            raise DataError(f"cannot save the download as {dest}: {err}") from err
        return None
    except _WriteFailed as err:
        raise DataError(f"cannot write the download to {tmp.parent}: {err}") from err
    finally:
        # After os.replace the name is gone, so this only removes a failed attempt.
        tmp.unlink(missing_ok=True)


def _fetch(
    url: str,
    out: BinaryIO,
    hasher: hashlib._Hash | None,
    timeout: float,
    progress: Callable[[int, int | None], None] | None,
) -> None:
    """Stream `url` into `out`, hashing as it goes. Network failures raise _MirrorFailed, a
    failed write _WriteFailed; whatever `progress` raises passes through unchanged."""
    headers = {"User-Agent": f"siamese/{__version__}"}
    received = 0
    response = _network(
        lambda: urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        ),
        timeout,
        0,
        None,
    )
    with response:
        total = _content_length(response)
        while chunk := _network(lambda: response.read(_CHUNK), timeout, received, total):
            try:
                out.write(chunk)
            except OSError as err:
                raise _WriteFailed(err) from err
            if hasher is not None:
                hasher.update(chunk)
            received += len(chunk)
            if progress is not None:
                progress(received, total)
    # http.client ends the body quietly when the connection closes early, so a cut-off
    # transfer shows only as fewer bytes than announced.
    if total is not None and received != total:
        raise _MirrorFailed(_cut_off(received, total))


_T = TypeVar("_T")


def _network(call: Callable[[], _T], timeout: float, received: int, total: int | None) -> _T:
    """The result of `call`, a network operation, with its failures turned into _MirrorFailed
    whose message says what went wrong in words."""
    try:
        return call()
    except urllib.error.HTTPError as err:
        err.close()
        raise _MirrorFailed(f"HTTP error {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            raise _MirrorFailed(_timed_out(timeout, received)) from err
        raise _MirrorFailed(f"cannot connect: {err.reason}") from err
    except TimeoutError as err:
        raise _MirrorFailed(_timed_out(timeout, received)) from err
    except http.client.IncompleteRead as err:
        raise _MirrorFailed(_cut_off(received, total)) from err
    except (ConnectionError, http.client.HTTPException) as err:
        raise _MirrorFailed(
            f"connection failed after {received} bytes ({type(err).__name__}: {err})"
        ) from err
    except OSError as err:
        raise _MirrorFailed(f"{type(err).__name__}: {err}") from err
    except ValueError as err:
        # urllib's answer to a URL it cannot parse or a scheme it does not know.
        raise _MirrorFailed(f"not a URL that can be downloaded: {err}") from err


def _content_length(response: http.client.HTTPResponse) -> int | None:
    """The announced body length, or None when absent or not a number."""
    value = response.headers.get("Content-Length")
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def _timed_out(timeout: float, received: int) -> str:
    if received == 0:
        return f"timed out: no response within the {timeout:g} s timeout"
    return f"timed out: no data for {timeout:g} s (the timeout) after {received} bytes"


def _cut_off(received: int, total: int | None) -> str:
    of_total = f" of the {total} announced" if total is not None else ""
    return f"transfer cut off: the connection closed after {received} bytes{of_total}"


def _parse_checksum(checksum: str) -> tuple[str, str]:
    """("sha256" or "md5", lower-case hex) from "sha256:<hex>" or "md5:<hex>"."""
    algorithm, _, digest = checksum.strip().partition(":")
    algorithm, digest = algorithm.lower(), digest.lower()
    length = _HEX_LENGTHS.get(algorithm)
    if length is None or len(digest) != length or any(c not in "0123456789abcdef" for c in digest):
        raise ConfigError(
            f"checksum {checksum!r} is not 'sha256:<64 hex digits>' or 'md5:<32 hex digits>'"
        )
    return algorithm, digest


def _new_hasher(algorithm: str) -> hashlib._Hash:
    try:
        # md5 only detects corruption here; saying so keeps it usable on FIPS systems.
        return hashlib.new(algorithm, usedforsecurity=False)
    except ValueError as err:
        raise ConfigError(f"unknown hash algorithm {algorithm!r}") from err


def _matches(path: Path, algorithm: str, digest: str) -> bool:
    try:
        return file_digest(path, algorithm) == digest
    except OSError:
        # An unreadable file is replaced like a corrupt one.
        return False
