"""Listing a class-folder tree, and the cached index of its image files that streaming reads.

    PATH/<class>/<image>                 every image, classes = the subfolder names
    PATH/train/<class>/<image>           the same, split: `train` plus `val` and/or `test`

`split_folders` lists every file with its size and stamp: what the decoded-pixel cache
(`siamese.data.folders.decoded_cache`) is keyed on. `folder_index` is the listing that
`siamese.data.folders.streamed` streams from: file names (no stat per file) and what each file's
header says (its size and whether it is grey or colour, or why it cannot be read), kept in
`cache_dir() / "folders"` and reused for every class folder whose stamp is unchanged.

A folder's stamp changes when a file in it is added, removed or renamed, not when a file is
rewritten in place under the same name: such a file is found when it is decoded (streaming
then names it). Headers are read once, so that files that are not images, empty, truncated in
their header, in an unsupported pixel mode or too large are reported when the folder is loaded,
not in the middle of training: 100,000 64×64 JPEGs are indexed in 12-20 s on 2 cores (a third
to a half of decoding them), and 0.1 s from the cache (benchmarks/bench_streaming.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import re
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import PIL

from siamese.cache import cache_dir, load_npz, save_npz_atomic
from siamese.data import image_files
from siamese.data.image_files import BadImageError
from siamese.errors import ConfigError, DataError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pbm", ".bmp", ".webp", ".tif", ".tiff"}
)
SPLIT_NAMES = ("train", "val", "test")
LAYOUT = (
    "expected PATH/<class>/<image> (one subfolder of images per class), or PATH/train/<class>/"
    "<image> with PATH/val/... and/or PATH/test/..."
)

_INDEX_VERSION = 1
_MAX_DEFAULT_WORKERS = 8
_MAX_CHUNK = 256  # files per worker task: few tasks, yet some balancing between workers
# Reading a header costs ~0.1 ms: a pool pays off from a few thousand files.
_MIN_PARALLEL_PROBES = 2048


@dataclass(frozen=True)
class ImageFile:
    class_name: str
    relative: str  # to the split folder (the unit of caching), posix
    size: int
    stamp: int  # changes when the file is rewritten or replaced (see `stamp_of`)


def stamp_of(stat: os.stat_result) -> int:
    """Modification and change times and inode in one int64: a copy that keeps the old
    modification time (cp -p, rsync -t) still gets a new change time and inode."""
    return hash((stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)) & 0x7FFF_FFFF_FFFF_FFFF


@dataclass
class SplitFolder:
    """One folder of class subfolders: PATH itself, or PATH/<split>."""

    name: str | None  # the split, None for a plain folder
    path: Path
    classes: dict[str, list[ImageFile]]  # class name -> its image files, sorted by name

    def prefix(self) -> str:
        """What turns a path relative to this folder into one relative to PATH."""
        return "" if self.name is None else f"{self.name}/"


def default_workers() -> int:
    """The worker processes used when none are asked for: the CPUs this process may use,
    at most 8."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(available or 1, _MAX_DEFAULT_WORKERS))


def visible_entries(folder: Path) -> list[os.DirEntry[str]]:
    """The entries of `folder` not hidden (dot files, .DS_Store), sorted by name."""
    try:
        with os.scandir(folder) as entries:
            return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as err:
        raise DataError(f"cannot list the folder {folder} ({err.strerror or err})") from None


def is_image(entry: os.DirEntry[str]) -> bool:
    return os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file()


def extensions_hint() -> str:
    return f"image files are found by extension ({' '.join(sorted(IMAGE_EXTENSIONS))})"


def split_layout(root: Path) -> list[tuple[str | None, Path]]:
    """PATH's split folders (train, val, test, those present) as (name, path), or
    [(None, PATH)] when it has none.

    A split folder is recognised by holding class folders; a `train` folder of images is a
    class named "train".
    """
    subfolders = [e for e in visible_entries(root) if e.is_dir()]
    if not subfolders:
        n_images = sum(is_image(e) for e in visible_entries(root))
        found = f"{n_images} image file(s) directly inside but no" if n_images else "no"
        raise DataError(f"{root} has {found} class subfolders: {LAYOUT}")
    names = {e.name for e in subfolders}
    splits = [
        name
        for name in SPLIT_NAMES
        if name in names and any(e.is_dir() for e in visible_entries(root / name))
    ]
    if not splits:
        return [(None, root)]
    others = sorted(names - set(SPLIT_NAMES))
    if others:
        raise DataError(
            f"{root} has split folders ({', '.join(splits)}) and other folders beside them "
            f"({', '.join(others[:5])}): move every class folder into train/, val/ or test/, or "
            "load one of the folders by itself"
        )
    return [(name, root / name) for name in SPLIT_NAMES if name in names]


def split_folders(root: Path) -> list[SplitFolder]:
    """Every split folder of PATH (`split_layout`) with each image file's size and stamp."""
    return [SplitFolder(name, path, _list_classes(path)) for name, path in split_layout(root)]


def _list_classes(folder: Path) -> dict[str, list[ImageFile]]:
    classes: dict[str, list[ImageFile]] = {}
    for class_entry in visible_entries(folder):
        if not class_entry.is_dir():
            continue
        files = []
        for entry in visible_entries(Path(class_entry.path)):
            if is_image(entry):
                try:
                    stat = entry.stat()
                except OSError as err:
                    raise DataError(
                        f"cannot read {entry.path} ({err.strerror or err}): check that it "
                        "exists and that you may read it"
                    ) from None
                relative = f"{class_entry.name}/{entry.name}"
                files.append(ImageFile(class_entry.name, relative, stat.st_size, stamp_of(stat)))
        classes[class_entry.name] = files
    return classes


def select_splits(root: Path, folders: Sequence[Any], split: str | None) -> list[Any]:
    """The folders (anything with a `.name`: the split, None for a plain folder) that `split`
    selects: all for None or "all".

    Raises:
        ConfigError: `split` names no split folder of PATH.
    """
    if split is None or split == "all":
        return list(folders)
    names = [f.name for f in folders if f.name is not None]
    if not names:
        raise ConfigError(
            f"split={split!r}, but {root} has no train/val/test subfolders (it is one "
            "PATH/<class>/<image> folder): use split=None or 'all'"
        )
    if split not in names:
        raise ConfigError(
            f"split={split!r} is not a subfolder of {root}; choose from "
            f"{', '.join([*names, 'all'])}"
        )
    return [f for f in folders if f.name == split]


# --- the cached index -------------------------------------------------------------------


@dataclass
class IndexedClass:
    """The image files of one class folder, sorted by name, with what their headers say."""

    name: str
    stamp: int  # the class folder's stamp when it was listed; -1: list it again next time
    files: list[str]  # file names
    heights: np.ndarray  # (F,) int32, after EXIF orientation; 0 when unreadable
    widths: np.ndarray  # (F,) int32
    channels: np.ndarray  # (F,) int8: 1 (grey) or 3 (colour) as decoded with channels=None
    reasons: list[str]  # "" or why the file cannot be used

    def __len__(self) -> int:
        return len(self.files)


@dataclass
class IndexedSplit:
    """One folder of class folders (PATH itself, or PATH/<split>), classes sorted by name."""

    name: str | None
    path: Path
    classes: dict[str, IndexedClass]

    def prefix(self) -> str:
        """What turns a path relative to this folder into one relative to PATH."""
        return "" if self.name is None else f"{self.name}/"


@dataclass
class FolderIndex:
    """Every image file of PATH by split and class (`folder_index`).

    Attributes:
        root: PATH.
        splits: the split folders in order (one with name None for a plain folder).
        relisted: class folders listed (and their headers read) by this call, not taken from
            the cache.
    """

    root: Path
    splits: list[IndexedSplit]
    relisted: int = 0
    cache_path: Path | None = field(default=None, repr=False)


def count_image_files(root: Path, split: str | None) -> int:
    """How many image files `split` of PATH has (names only: one directory read per folder,
    no stat per file), for deciding whether to stream."""
    layout = [_Named(name, path) for name, path in split_layout(root)]
    total = 0
    for folder in select_splits(root, layout, split):
        for class_entry in visible_entries(folder.path):
            if class_entry.is_dir():
                total += sum(is_image(e) for e in visible_entries(Path(class_entry.path)))
    return total


@dataclass
class _Named:
    name: str | None
    path: Path


def first_image_file(root: Path, split: str | None) -> str | None:
    """The first image file of `split` of PATH (by split, class and name), or None."""
    layout = [_Named(name, path) for name, path in split_layout(root)]
    for folder in select_splits(root, layout, split):
        for class_entry in visible_entries(folder.path):
            if class_entry.is_dir():
                for entry in visible_entries(Path(class_entry.path)):
                    if is_image(entry):
                        return entry.path
    return None


def folder_index(root: Path, workers: int, use_cache: bool = True) -> FolderIndex:
    """The image files of PATH (every split), from the cache where their class folder is
    unchanged, else listed and their headers read (in `workers` processes for many files).

    Args:
        root: PATH, an existing folder.
        workers: processes that read headers (1: this process).
        use_cache: read and write the index in `cache_dir() / "folders"`.
    Returns:
        FolderIndex, splits in SPLIT_NAMES order, classes and files sorted by name.
    Raises:
        DataError: PATH is laid out otherwise, or a folder cannot be listed.
    """
    layout = split_layout(root)
    path = _index_path(root)
    cached = _read_index(path) if use_cache else {}
    splits: list[IndexedSplit] = []
    pending: list[tuple[IndexedClass, Path]] = []
    relisted = 0
    for split_name, split_path in layout:
        classes: dict[str, IndexedClass] = {}
        for entry in visible_entries(split_path):
            if not entry.is_dir():
                continue
            stamp = _folder_stamp(entry)
            hit = cached.get((split_name or "", entry.name))
            if hit is not None and hit.stamp == stamp:
                classes[entry.name] = hit
                continue
            names = [e.name for e in visible_entries(Path(entry.path)) if is_image(e)]
            listed = IndexedClass(
                entry.name,
                stamp,
                names,
                np.zeros(len(names), np.int32),
                np.zeros(len(names), np.int32),
                np.zeros(len(names), np.int8),
                [""] * len(names),
            )
            classes[entry.name] = listed
            pending.append((listed, Path(entry.path)))
            relisted += 1
        splits.append(IndexedSplit(split_name, split_path, classes))
    _probe(pending, workers)
    index = FolderIndex(root, splits, relisted, path)
    stale = relisted or sum(len(s.classes) for s in splits) != len(cached)
    if use_cache and stale:
        _write_index(path, index)
    return index


def _folder_stamp(entry: os.DirEntry[str]) -> int:
    try:
        return stamp_of(entry.stat())
    except OSError as err:
        raise DataError(f"cannot read the folder {entry.path} ({err.strerror or err})") from None


def _probe(pending: list[tuple[IndexedClass, Path]], workers: int) -> None:
    """Read the header of every file of `pending` into its IndexedClass."""
    paths = [str(folder / name) for listed, folder in pending for name in listed.files]
    if not paths:
        return
    if workers > 1 and len(paths) >= _MIN_PARALLEL_PROBES:
        outcomes = map_in_pool(
            image_files.probe_images, paths, (), workers, "reading the headers of"
        )
    else:
        outcomes = image_files.probe_images(paths)
    it = iter(outcomes)
    for listed, _ in pending:
        for i in range(len(listed.files)):
            outcome = next(it)
            if isinstance(outcome, BadImageError):
                listed.reasons[i] = outcome.reason
                if not outcome.lasting:
                    listed.stamp = -1  # an access problem: look again next time
            else:
                listed.heights[i], listed.widths[i], listed.channels[i] = outcome


def _index_path(root: Path) -> Path:
    resolved = root.resolve()
    key = json.dumps([_INDEX_VERSION, str(resolved), PIL.__version__])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", resolved.name)[:40]
    return cache_dir() / "folders" / f"{readable}-{digest}-index.npz"


def _pack(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as one uint8 array of their UTF-8 bytes and (S,) int64 end offsets (compact,
    and no pickling)."""
    encoded = [s.encode("utf-8", "surrogateescape") for s in strings]
    ends = np.cumsum([len(e) for e in encoded], dtype=np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), ends


def _unpack(blob: np.ndarray, ends: np.ndarray) -> list[str]:
    data = blob.tobytes()
    starts = np.concatenate([[0], ends[:-1]]).tolist()
    return [
        data[s:e].decode("utf-8", "surrogateescape")
        for s, e in zip(starts, ends.tolist(), strict=True)
    ]


def _write_index(path: Path, index: FolderIndex) -> None:
    classes = [(s.name or "", c) for s in index.splits for c in s.classes.values()]
    files = [name for _, c in classes for name in c.files]
    reasons = [reason for _, c in classes for reason in c.reasons]
    names_blob, names_ends = _pack(files)
    reasons_blob, reasons_ends = _pack(reasons)

    def joined(part: str, dtype: type) -> np.ndarray:
        arrays = [getattr(c, part) for _, c in classes]
        return np.concatenate(arrays).astype(dtype) if arrays else np.empty(0, dtype)

    save_npz_atomic(
        path,
        class_splits=np.array([split for split, _ in classes], dtype=str),
        class_names=np.array([c.name for _, c in classes], dtype=str),
        class_stamps=np.array([c.stamp for _, c in classes], dtype=np.int64),
        class_sizes=np.array([len(c.files) for _, c in classes], dtype=np.int64),
        names_blob=names_blob,
        names_ends=names_ends,
        reasons_blob=reasons_blob,
        reasons_ends=reasons_ends,
        heights=joined("heights", np.int32),
        widths=joined("widths", np.int32),
        channels=joined("channels", np.int8),
    )


def _read_index(path: Path) -> dict[tuple[str, str], IndexedClass]:
    """(split or "", class name) -> its cached listing; {} when there is no index or it is
    damaged (then everything is listed again)."""
    arrays = load_npz(path)
    if arrays is None:
        return {}
    try:
        sizes = arrays["class_sizes"]
        files = _unpack(arrays["names_blob"], arrays["names_ends"])
        reasons = _unpack(arrays["reasons_blob"], arrays["reasons_ends"])
        heights, widths, channels = arrays["heights"], arrays["widths"], arrays["channels"]
        splits, names, stamps = (
            arrays["class_splits"],
            arrays["class_names"],
            arrays["class_stamps"],
        )
        total = int(sizes.sum())
        if not (
            len(files) == len(reasons) == len(heights) == len(widths) == len(channels) == total
            and len(splits) == len(names) == len(stamps) == len(sizes)
        ):
            return {}
    except (KeyError, ValueError, UnicodeDecodeError):
        return {}
    out: dict[tuple[str, str], IndexedClass] = {}
    start = 0
    for split, name, stamp, size in zip(
        splits.tolist(), names.tolist(), stamps.tolist(), sizes.tolist(), strict=True
    ):
        end = start + size
        out[(split, name)] = IndexedClass(
            name,
            stamp,
            files[start:end],
            heights[start:end].copy(),
            widths[start:end].copy(),
            channels[start:end].copy(),
            reasons[start:end],
        )
        start = end
    return out


# --- the pool of worker processes --------------------------------------------------------


def pool_context() -> multiprocessing.context.BaseContext:
    """fork on Linux, spawn elsewhere.

    Like torch's DataLoader: a forked worker starts in milliseconds and, unlike spawn or
    forkserver, does not run the user's main script again, so a script without an
    `if __name__ == "__main__":` guard works. The workers only run Pillow and numpy (and, when
    streaming, torch with one thread), so the threads of the parent's torch pool do not
    matter to them.
    """
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def map_in_pool(
    function: Callable[..., list[Any]],
    paths: list[str],
    arguments: tuple,
    workers: int,
    doing: str,
) -> list[Any]:
    """`function(chunk, *arguments)` over chunks of `paths` in `workers` processes, the
    outcomes concatenated in order; `doing` says what for, in the error of a dead worker.

    Raises:
        DataError: a worker process died (out of memory, or a crash in an image library).
    """
    chunk = min(_MAX_CHUNK, math.ceil(len(paths) / (workers * 4)))
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    columns = [repeat(value, len(chunks)) for value in arguments]
    try:
        with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=pool_context()) as pool:
            return [outcome for part in pool.map(function, chunks, *columns) for outcome in part]
    except BrokenProcessPool:
        guard = (
            ""
            if sys.platform.startswith("linux")
            else "; outside Linux the workers run your script again: put its code under "
            '`if __name__ == "__main__":`'
        )
        raise DataError(
            f"a worker process died while {doing} {len(paths)} image files under "
            f"{os.path.commonpath(paths)} (out of memory, or a crash in an image library"
            f"{guard}): run again with workers=1 to see which file, or lower max_pixels"
        ) from None
