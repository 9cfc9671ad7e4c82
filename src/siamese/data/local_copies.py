"""What of each named dataset is in the data directory, and fetching what is not.

Backs `siamese datasets list | check | download`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from siamese.data.datasets.catalog import SHARED_PACKS, DatasetInfo, dataset_info
from siamese.data.datasets.download import download_file, file_digest
from siamese.errors import ConfigError, DataError

# (examples, classes) of every split, checked by `check --load`.
EXPECTED_COUNTS: dict[str, dict[str, tuple[int, int]]] = {
    "mnist": {"train": (60000, 10), "test": (10000, 10)},
    "fashion-mnist": {"train": (60000, 10), "test": (10000, 10)},
    "orl": {"all": (400, 40)},
    "omniglot": {"background": (19280, 964), "evaluation": (13180, 659)},
    "5-celebrity-faces": {"train": (93, 5), "val": (25, 5)},
    "digits": {"all": (1797, 10)},
}


@dataclass(frozen=True)
class FileStatus:
    """One file of a dataset in the data directory.

    `state` is "ok" (checksum matches), "present" (no checksum to compare), "missing" or
    "corrupt" (checksum differs); `detail` says more.
    """

    name: str
    state: str
    detail: str = ""


@dataclass(frozen=True)
class DatasetStatus:
    """A dataset's state in the data directory: "ready", "missing", "corrupt", "bundled"
    (nothing to download), or "needs <package>" (bundled in a package that is not installed)."""

    info: DatasetInfo
    folder: Path
    state: str
    files: tuple[FileStatus, ...]


def _file_status(path: Path, checksum: str | None, verify: bool) -> FileStatus:
    if not path.exists():
        return FileStatus(path.name, "missing")
    if path.is_dir():
        return FileStatus(path.name + "/", "present", "extracted folder")
    if checksum is None or not verify:
        return FileStatus(path.name, "present", "no published checksum" if checksum is None else "")
    algorithm, expected = checksum.split(":", 1)
    actual = file_digest(path, algorithm)
    if actual == expected:
        return FileStatus(path.name, "ok", f"{algorithm} verified")
    return FileStatus(
        path.name, "corrupt", f"{algorithm} is {actual[:16]}…, expected {expected[:16]}…"
    )


def dataset_status(name: str, data_dir: Path, verify: bool = True) -> DatasetStatus:
    """Which of `name`'s files are in `data_dir`, checksums compared when `verify`.

    "ready" when every split has one of the catalog's accepted layouts; the official files
    and any present layout files are listed, with their checksum where one is known.
    """
    info = dataset_info(name)
    folder = data_dir / info.folder
    if info.bundled:
        if info.requires is not None and importlib.util.find_spec(info.requires) is None:
            package = {"sklearn": "scikit-learn"}.get(info.requires, info.requires)
            return DatasetStatus(info, folder, f"needs {package}", ())
        return DatasetStatus(info, folder, "bundled", ())
    files = [_file_status(folder / f.name, f.checksum, verify) for f in info.files]
    listed = {f.name for f in info.files}
    for split in info.splits:
        found = info.find_layout(folder, split)
        if found is not None and found[1].name not in listed:
            listed.add(found[1].name)
            files.append(_file_status(found[1], SHARED_PACKS.get(found[1].name), verify))
    if any(f.state == "corrupt" for f in files):
        state = "corrupt"
    elif all(info.find_layout(folder, split) is not None for split in info.splits):
        state = "ready"
    else:
        state = "missing"
    return DatasetStatus(info, folder, state, tuple(files))


def download_dataset(
    name: str,
    data_dir: Path,
    progress: Callable[[str, int, int | None], None] | None = None,
    timeout: float = 60,
) -> list[Path]:
    """Download `name`'s official files into `data_dir/<folder>/`, checksums verified.

    Files already there and matching their checksum are kept. A file with no published
    checksum (the ORL archive) is checked by loading the dataset after the download, and
    removed again if it does not hold the expected layout.

    Args:
        progress: called with (file name, bytes so far, total or None) while downloading.
    Returns:
        The paths of the dataset's files.
    Raises:
        ConfigError: unknown dataset. DataError: nothing to download (bundled, or only
        available by hand), or every mirror of a file failed.
    """
    info = dataset_info(name)
    if info.bundled:
        raise DataError(f"{name} needs no download: {info.manual}")
    if not info.files:
        raise DataError(f"{name} cannot be downloaded automatically. {info.manual}")
    folder = data_dir / info.folder
    folder_existed = folder.exists()
    paths = []
    try:
        for remote in info.files:
            report = None
            if progress is not None:
                report = lambda done, total, n=remote.name: progress(n, done, total)  # noqa: E731
            dest = folder / remote.name
            existed = dest.exists()
            download_file(remote.urls, dest, remote.checksum, timeout=timeout, progress=report)
            if remote.checksum is None and not existed:
                _check_by_loading(name, data_dir, dest)
            paths.append(dest)
    except BaseException:
        if not folder_existed and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a failed first download leaves no empty folder behind
        raise
    return paths


def _check_by_loading(name: str, data_dir: Path, dest: Path) -> None:
    """Load the dataset from `dest` alone (linked into a scratch data directory), so that no
    other file in the folder can stand in for it; remove `dest` if that fails."""
    from siamese.data.sources import load_dataset

    info = dataset_info(name)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".check-") as scratch:
        alone = Path(scratch) / info.folder / dest.name
        alone.parent.mkdir(parents=True)
        try:
            os.link(dest, alone)
        except OSError:  # a file system without hard links
            shutil.copyfile(dest, alone)
        try:
            load_dataset(name, data_dir=Path(scratch))
        except DataError as err:
            dest.unlink(missing_ok=True)
            raise DataError(
                f"{dest}: the downloaded file is not a usable copy of {name} and was removed: {err}"
            ) from None


def check_counts(name: str, data_dir: Path) -> list[str]:
    """Load every split of `name` and compare its size with the published counts.

    Returns:
        One line per split: "train: 60,000 examples, 10 classes (as published)", or what
        differs.
    """
    from siamese.data.sources import load_dataset

    if name not in EXPECTED_COUNTS:
        raise ConfigError(f"no published counts for {name}")
    lines = []
    for split, (examples, classes) in EXPECTED_COUNTS[name].items():
        data = load_dataset(name, split, data_dir=data_dir)
        got = (len(data), int(data.class_ids.numel()))
        verdict = (
            "as published"
            if got == (examples, classes)
            else (f"PUBLISHED {examples:,} examples, {classes} classes")
        )
        lines.append(f"{split}: {got[0]:,} examples, {got[1]} classes ({verdict})")
    return lines
