"""What of each named dataset is in the data directory, and fetching what is not.

Backs `siamese datasets list | check | download`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from siamese.data.catalog import DATASETS, DatasetInfo, dataset_info
from siamese.data.download import download_file, file_digest
from siamese.errors import ConfigError, DataError

# Checksums of the repacked forms the loaders also accept (the project's shared data packs).
KNOWN_PACKS: dict[str, dict[str, str]] = {
    "orl": {
        "orl_faces.tar.gz": "sha256:3f572092f8449fc56bc6eb94fd2c0e9948a5e1adc56f60da5c9291cd22c28abc"
    },
    "omniglot": {
        "omniglot_background.npz": "sha256:e2f7a9a94059fcf71375fa1594cf69f739f6e1ee10172d29ee3a60e33824fb49",
        "omniglot_evaluation.npz": "sha256:a369b5db7302554c8c0cf24d28c6eabab05381ba0155914a826b67dda31f768b",
    },
    "5-celebrity-faces": {
        "5-celebrity-faces-dataset.tar.gz": "sha256:94d97d478dea6867e4849f6e8a277eb1720fea2eaa667d5937f08e9d23296964"
    },
}

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
    """A dataset's state in the data directory: "ready", "missing", "corrupt", "bundled"."""

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
    """Which of `name`'s files are in `data_dir`, checksums compared when `verify`."""
    info = dataset_info(name)
    folder = data_dir / info.folder
    if info.bundled:
        return DatasetStatus(info, folder, "bundled", ())
    official = tuple(_file_status(folder / f.name, f.checksum, verify) for f in info.files)
    packs = KNOWN_PACKS.get(name, {})
    others = tuple(
        _file_status(folder / alt.rstrip("/"), packs.get(alt), verify)
        for alt in info.alternatives
        if (folder / alt.rstrip("/")).exists()
    )
    files = official + others
    if any(f.state == "corrupt" for f in files):
        state = "corrupt"
    elif official and all(f.state != "missing" for f in official):
        state = "ready"
    else:
        state = "ready" if _alternative_complete(name, folder) else "missing"
    return DatasetStatus(info, folder, state, files)


def _alternative_complete(name: str, folder: Path) -> bool:
    """Whether the files that stand in for the official ones cover every split."""
    if name == "omniglot":
        return all(
            (folder / f"omniglot_{s}.npz").is_file()
            or (folder / f"images_{s}.zip").is_file()
            or (folder / f"images_{s}").is_dir()
            for s in ("background", "evaluation")
        )
    info = DATASETS[name]
    return any((folder / alt.rstrip("/")).exists() for alt in info.alternatives)


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
    paths = []
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
    return paths


def _check_by_loading(name: str, data_dir: Path, dest: Path) -> None:
    from siamese.data.sources import load_dataset

    try:
        load_dataset(name, data_dir=data_dir)
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
