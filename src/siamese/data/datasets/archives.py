"""Reading and extracting tar and zip archives safely.

A member whose name is absolute, climbs out with `..`, or is a link, device or FIFO could
write outside the target directory or read files the archive does not hold, so such an
archive is refused as a whole before anything is written. Extraction goes to a temporary
directory beside the target and is renamed into place at the end: after a failure the
target either does not exist or is what it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from siamese.errors import DataError

ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz", ".zip")


@dataclass(frozen=True)
class ArchiveMember:
    """A regular file inside an archive."""

    name: str  # posix path inside the archive, normalised (no leading "./")
    size: int


def is_archive(path: Path) -> bool:
    """Whether `path`'s name ends in a supported archive suffix."""
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in ARCHIVE_SUFFIXES)


def _is_os_metadata(name: str) -> bool:
    """macOS Finder adds `__MACOSX/` resource forks and `.DS_Store` files to the zips it makes."""
    return name.startswith("__MACOSX/") or name.rsplit("/", 1)[-1] == ".DS_Store"


def _safe_name(archive: Path, name: str) -> str:
    """`name` normalised, or a DataError when it could escape the extraction directory."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or (posix.parts and ":" in posix.parts[0]):
        raise DataError(
            f"{archive}: the member {name!r} would be written outside the target directory; "
            "the archive is unsafe or damaged and was not extracted: get it from the official "
            "source again"
        )
    return "/".join(part for part in posix.parts if part not in ("", "."))


def _open_error(archive: Path, err: Exception) -> DataError:
    return DataError(
        f"{archive}: cannot read the archive ({err}); it is damaged or not a tar/zip file: "
        "delete it and download it again"
    )


def list_members(archive: Path) -> list[ArchiveMember]:
    """The regular files in `archive` (directories left out), in archive order.

    Raises:
        DataError: the archive cannot be read, or holds an unsafe member (absolute path,
            `..`, link, device).
    """
    return [member for member, _ in _iterate(archive, read=False)]


def read_members(archive: Path) -> Iterator[tuple[ArchiveMember, bytes]]:
    """Every regular file in `archive` with its bytes, in archive order (one pass)."""
    return _iterate(archive, read=True)


def _iterate(archive: Path, read: bool) -> Iterator[tuple[ArchiveMember, bytes]]:
    if not archive.is_file():
        raise DataError(f"{archive}: archive not found")
    if archive.name.lower().endswith(".zip"):
        return _iterate_zip(archive, read)
    return _iterate_tar(archive, read)


def _iterate_zip(archive: Path, read: bool) -> Iterator[tuple[ArchiveMember, bytes]]:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise _open_error(archive, err) from None
    with zf:
        infos = zf.infolist()
        for info in infos:
            _safe_name(archive, info.filename)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DataError(
                    f"{archive}: the member {info.filename!r} is a symbolic link; links are "
                    "not extracted because they can point outside the target directory"
                )
        for info in infos:
            if info.is_dir():
                continue
            member = ArchiveMember(_safe_name(archive, info.filename), info.file_size)
            if _is_os_metadata(member.name):
                continue
            try:
                payload = zf.read(info) if read else b""
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise DataError(
                    f"{archive}: the member {info.filename!r} is damaged ({err}); download "
                    "the archive again"
                ) from None
            yield member, payload


def _iterate_tar(archive: Path, read: bool) -> Iterator[tuple[ArchiveMember, bytes]]:
    try:
        tf = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError, EOFError) as err:
        raise _open_error(archive, err) from None
    with tf:
        try:
            for info in tf:
                name = _safe_name(archive, info.name)
                if info.isdir() or _is_os_metadata(name):
                    continue
                if not info.isfile():
                    kind = "link" if (info.issym() or info.islnk()) else "special file"
                    raise DataError(
                        f"{archive}: the member {info.name!r} is a {kind}; the archive was not "
                        "used because links and devices can reach outside the target directory"
                    )
                payload = b""
                if read:
                    handle = tf.extractfile(info)
                    payload = handle.read() if handle is not None else b""
                    if len(payload) != info.size:
                        raise EOFError(f"{info.name} is cut off")
                yield ArchiveMember(name, info.size), payload
        except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
            raise DataError(
                f"{archive}: the archive is truncated or damaged ({err}); delete it and "
                "download it again"
            ) from None


def extract_archive(archive: Path, target: Path) -> Path:
    """Extract every regular file of `archive` into the new directory `target`.

    Every member is checked before anything is written; files are written to a temporary
    sibling directory renamed to `target` at the end, so `target` never holds a partial
    extraction.

    Returns:
        `target`.
    Raises:
        DataError: unsafe or damaged archive; `target` already exists.
    """
    if target.exists():
        raise DataError(f"{target}: already exists; remove it or extract somewhere else")
    list_members(archive)  # refuses unsafe archives before anything is written
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        for member, payload in read_members(archive):
            destination = staging.joinpath(*member.name.split("/"))
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(payload)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def cached_extraction(archive: Path, cache_root: Path) -> Path:
    """`archive` extracted under `cache_root`, once per version of the archive.

    The extraction directory is named after the archive's path, so it stays the same while
    the archive does; a rewritten or replaced archive is extracted again and swapped in.
    A single top-level folder is stepped into (most archives wrap their content in one).

    Returns:
        The directory holding the archive's content.
    Raises:
        DataError: unsafe or damaged archive, or a cache that cannot be written.
    """
    from siamese.cache import file_version

    identity = hashlib.sha256(str(archive.resolve()).encode()).hexdigest()[:16]
    version = file_version(archive)
    target = cache_root / identity
    stamp = target / ".archive-version"
    if stamp.is_file() and stamp.read_text() == version:
        return _single_root(target)
    staging = cache_root / f".{identity}.{os.getpid()}.new"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        extract_archive(archive, staging)
        (staging / ".archive-version").write_text(version)
        if target.exists():
            retired = cache_root / f".{identity}.{os.getpid()}.old"
            target.rename(retired)
            shutil.rmtree(retired, ignore_errors=True)
        staging.rename(target)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        if stamp.is_file() and stamp.read_text() == version:  # another process was first
            return _single_root(target)
        raise DataError(
            f"{archive}: cannot extract it into the cache {cache_root} ({err}); free some "
            "space, or set SIAMESE_CACHE_DIR to a writable directory"
        ) from None
    return _single_root(target)


def _single_root(target: Path) -> Path:
    entries = [p for p in target.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return target
