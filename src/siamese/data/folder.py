"""`folder:PATH`: a folder of image files, one subfolder per class.

    PATH/<class>/<image>                 every image, classes = the subfolder names
    PATH/train/<class>/<image>           the same, split: `train` plus `val` and/or `test`
    PATH/val/<class>/<image>

Class ids index the sorted class names; with splits, the names of every split together, so a
class has the same id in each. Files are decoded by a pool of worker processes and the pixels
cached (one file per folder and decoding options in `cache_dir() / "folders"`); a later load
decodes only the files that are new or changed since.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import numbers
import os
import re
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import torch

from siamese.data import image_files
from siamese.data.cache import cache_dir, load_npz, save_npz_atomic
from siamese.data.image_files import DEFAULT_MAX_PIXELS, RESIZE_MODES, BadImageError
from siamese.data.labeled import LabeledData, SkippedFile, warn_single_sample_classes
from siamese.errors import ConfigError, DataError
from siamese.faces.step import CROP_VERSION, NO_FACE, FaceStep, face_step

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pbm", ".bmp", ".webp", ".tif", ".tiff"}
)
SPLIT_NAMES = ("train", "val", "test")
ON_BAD_FILE = ("error", "skip")

_FORMAT_VERSION = 2  # 2: per-file stamps include change time and inode
# Forking the workers and sending the pixels back costs some 30 ms: measured on 2 cores, 300
# small PNGs decode as fast here as in a pool, 3,000 take 1.5x less time in two workers. A pool
# is used from this many files, or this many bytes of files (a few large photos).
_MIN_PARALLEL_FILES = 256
_MIN_PARALLEL_BYTES = 16 * 2**20
_MAX_DEFAULT_WORKERS = 8
_MAX_CHUNK = 256  # files per worker task: few tasks, yet some balancing between workers
_LISTED_PROBLEMS = 10
_LAYOUT = (
    "expected PATH/<class>/<image> (one subfolder of images per class), or PATH/train/<class>/"
    "<image> with PATH/val/... and/or PATH/test/..."
)


@dataclass(frozen=True)
class _Options:
    """What decides the decoded pixels of a file (and so the cache key)."""

    channels: int | None
    size: tuple[int, int] | None
    resize: str
    max_pixels: int
    face: FaceStep | None = None


@dataclass(frozen=True)
class _ImageFile:
    class_name: str
    relative: str  # to the split folder (the unit of caching), posix
    size: int
    stamp: int  # changes when the file is rewritten or replaced (see `_stamp`)


def _stamp(stat: os.stat_result) -> int:
    """Modification and change times and inode in one int64: a copy that keeps the old
    modification time (cp -p, rsync -t) still gets a new change time and inode."""
    return hash((stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)) & 0x7FFF_FFFF_FFFF_FFFF


class _PassingReason(str):
    """Why a file could not be read when that is about access, not content: not cached."""


@dataclass
class _SplitFolder:
    """One folder of class subfolders: PATH itself, or PATH/<split>."""

    name: str | None  # the split, None for a plain folder
    path: Path
    classes: dict[str, list[_ImageFile]]  # class name -> its image files, sorted by name

    def prefix(self) -> str:
        """What turns a path relative to this folder into one relative to PATH."""
        return "" if self.name is None else f"{self.name}/"


def load_folder(
    path: str | os.PathLike[str],
    split: str | None = None,
    *,
    image_size: tuple[int, int] | int | None = None,
    channels: int | None = None,
    resize: str = "stretch",
    on_bad_file: str = "error",
    workers: int | None = None,
    use_cache: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    face: Any = None,
) -> LabeledData:
    """Load a folder of images with one subfolder per class.

    Args:
        path: PATH/<class>/<image>, or PATH/train|val|test/<class>/<image>. Files are found by
            extension (.jpg .jpeg .png .pgm .ppm .pbm .bmp .webp .tif .tiff, any case); other
            files, hidden files and hidden folders are ignored.
        split: with train/val/test subfolders, the one to load; None or "all" loads them all
            (`meta["split"]` tells them apart). A plain folder accepts only None or "all".
        image_size: (H, W) (or one int for a square) to resize every image to; None keeps the
            images' size, which must then be the same for all.
        channels: 1 (grayscale) or 3 (RGB); None keeps the images' own kind, 3 when any is in
            colour (grayscale images are then replicated).
        resize: with `image_size`, "stretch" (ignore the aspect ratio), "crop" (centre-crop to
            the target aspect ratio) or "pad" (fit inside, black borders).
        on_bad_file: "error" (an unusable file is an error) or "skip" (leave it out, list it in
            `skipped`, warn once).
        workers: decoding processes; None is the number of CPUs (at most 8), 1 decodes in this
            process. Jobs under 64 files or 32 MiB are always decoded in this process.
        use_cache: read and write the decoded pixels in `cache_dir() / "folders"`.
        max_pixels: images with more pixels are refused unread (decompression bombs).
        face: a face step (`siamese.faces.FaceStep`, a detector name or a mapping of its
            settings): each image becomes its largest face, detected and cropped or aligned
            (then resized to `image_size`, if given); photos without a face are an error or,
            with the step's on_no_face "skip", left out and listed in `skipped`. Needs the
            `faces` extra.
    Returns:
        LabeledData with x uint8 (N, C, H, W), y int64 (N,) indexing `classes` (the sorted
        class folder names), `paths` relative to PATH, sorted by split, class and file name,
        `skipped` the files left out; with splits, meta["split"] int64 (N,) indexing
        meta_names["split"].
    Raises:
        ConfigError: an option is invalid.
        DataError: the folder is missing or laid out otherwise, a class folder is empty, or
            (with on_bad_file="error") an image cannot be used; sizes differ without
            `image_size`.
    """
    options = _check_options(image_size, channels, resize, max_pixels, face)
    if on_bad_file not in ON_BAD_FILE:
        raise ConfigError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
    n_workers = _check_workers(workers)
    root = _check_root(Path(path).expanduser())
    folders = _split_folders(root)
    selected = _select(root, folders, split)
    classes = sorted({name for f in folders for name, files in f.classes.items() if files})
    if not any(files for f in selected for files in f.classes.values()):
        where = ", ".join(str(f.path) for f in selected)
        raise DataError(f"no image files in {where}: {_LAYOUT}; {_extensions_hint()}")

    skipped = _empty_class_folders(root, selected, on_bad_file)
    split_names = [f.name for f in folders if f.name is not None]
    good, bad = _sort_outcomes(
        _decode_with_cache(selected, options, n_workers, use_cache), split_names
    )
    faceless = [b for b in bad if b.reason.startswith(NO_FACE)]
    unreadable = [b for b in bad if not b.reason.startswith(NO_FACE)]
    if unreadable and on_bad_file == "error":
        raise DataError(_bad_files_message(root, unreadable, len(good) + len(bad)))
    if faceless and options.face is not None and options.face.on_no_face == "error":
        raise DataError(_no_face_message(root, faceless, len(good) + len(bad), options.face))
    skipped += bad
    if not good:
        raise DataError(
            f"none of the {len(bad)} image files in {root} can be used, e.g. {bad[0].path}: "
            f"{bad[0].reason}"
        )
    if skipped:
        warnings.warn(_skipped_summary(root, skipped), stacklevel=2)

    paths = [relative for relative, *_ in good]
    x = _stack(root, paths, [pixels for *_, pixels in good], options.channels)
    class_id = {name: i for i, name in enumerate(classes)}
    y = torch.tensor([class_id[name] for _, name, _, _ in good], dtype=torch.int64)
    meta: dict[str, torch.Tensor] = {}
    meta_names: dict[str, list[str]] = {}
    if split_names:
        meta["split"] = torch.tensor([s for _, _, s, _ in good], dtype=torch.int64)
        meta_names["split"] = split_names
    data = LabeledData(
        x=torch.from_numpy(x),
        y=y,
        classes=classes,
        meta=meta,
        meta_names=meta_names,
        paths=paths,
        skipped=skipped,
    )
    warn_single_sample_classes(data, str(root))
    return data


def _sort_outcomes(
    results: list[tuple[_SplitFolder, list[_ImageFile], list[np.ndarray | str]]],
    split_names: list[str],
) -> tuple[list[tuple[str, str, int, np.ndarray]], list[SkippedFile]]:
    """The decoded files as (path relative to PATH, class, split index, pixels), in order, and
    the files that cannot be used."""
    good: list[tuple[str, str, int, np.ndarray]] = []
    bad: list[SkippedFile] = []
    for folder, files, outcomes in results:
        split_index = split_names.index(folder.name) if folder.name is not None else 0
        for file, outcome in zip(files, outcomes, strict=True):
            relative = folder.prefix() + file.relative
            if isinstance(outcome, str):
                bad.append(SkippedFile(relative, outcome))
            else:
                good.append((relative, file.class_name, split_index, outcome))
    return good, bad


def _check_options(
    image_size: tuple[int, int] | int | None,
    channels: int | None,
    resize: str,
    max_pixels: int,
    face: Any = None,
) -> _Options:
    size: tuple[int, int] | None = None
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if image_size is not None:
        if (
            not isinstance(image_size, Sequence)
            or len(image_size) != 2
            or not all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0
                for v in image_size
            )
        ):
            raise ConfigError(
                f"image_size must be (H, W) with two positive integers, got {image_size!r}"
            )
        size = (int(image_size[0]), int(image_size[1]))
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 (grayscale), 3 (RGB) or None, got {channels!r}")
    if resize not in RESIZE_MODES:
        raise ConfigError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    if not isinstance(max_pixels, int) or max_pixels < 1:
        raise ConfigError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    step = face_step(face)
    if step is not None and step.faces != "largest":
        raise ConfigError(
            "face.faces must be 'largest' for a dataset (each photo is one labelled example); "
            "'all' is for recognising every face of a photo"
        )
    return _Options(channels, size, resize, max_pixels, step)


def _check_workers(workers: int | None) -> int:
    if workers is None:
        available = (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        )
        return max(1, min(available or 1, _MAX_DEFAULT_WORKERS))
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer or None, got {workers!r}")
    return workers


def _check_root(root: Path) -> Path:
    if not root.exists():
        raise DataError(f"the image folder {root} does not exist: {_LAYOUT}")
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder: {_LAYOUT}")
    return root


def _visible_entries(folder: Path) -> list[os.DirEntry[str]]:
    """The entries of `folder` not hidden (dot files, .DS_Store), sorted by name."""
    try:
        with os.scandir(folder) as entries:
            return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as err:
        raise DataError(f"cannot list the folder {folder} ({err.strerror or err})") from None


def _is_image(entry: os.DirEntry[str]) -> bool:
    return os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file()


def _split_folders(root: Path) -> list[_SplitFolder]:
    """PATH's split folders (train, val, test, those present) or PATH itself when it has none.

    A split folder is recognised by holding class folders; a `train` folder of images is a
    class named "train".
    """
    subfolders = [e for e in _visible_entries(root) if e.is_dir()]
    if not subfolders:
        n_images = sum(_is_image(e) for e in _visible_entries(root))
        found = f"{n_images} image file(s) directly inside but no" if n_images else "no"
        raise DataError(f"{root} has {found} class subfolders: {_LAYOUT}")
    names = {e.name for e in subfolders}
    splits = [
        name
        for name in SPLIT_NAMES
        if name in names and any(e.is_dir() for e in _visible_entries(root / name))
    ]
    if not splits:
        return [_SplitFolder(None, root, _list_classes(root))]
    others = sorted(names - set(SPLIT_NAMES))
    if others:
        raise DataError(
            f"{root} has split folders ({', '.join(splits)}) and other folders beside them "
            f"({', '.join(others[:5])}): move every class folder into train/, val/ or test/, or "
            "load one of the folders by itself"
        )
    present = [name for name in SPLIT_NAMES if name in names]
    return [_SplitFolder(name, root / name, _list_classes(root / name)) for name in present]


def _list_classes(folder: Path) -> dict[str, list[_ImageFile]]:
    classes: dict[str, list[_ImageFile]] = {}
    for class_entry in _visible_entries(folder):
        if not class_entry.is_dir():
            continue
        files = []
        for entry in _visible_entries(Path(class_entry.path)):
            if _is_image(entry):
                try:
                    stat = entry.stat()
                except OSError as err:
                    raise DataError(
                        f"cannot read {entry.path} ({err.strerror or err}): check that it "
                        "exists and that you may read it"
                    ) from None
                relative = f"{class_entry.name}/{entry.name}"
                files.append(_ImageFile(class_entry.name, relative, stat.st_size, _stamp(stat)))
        classes[class_entry.name] = files
    return classes


def _select(root: Path, folders: list[_SplitFolder], split: str | None) -> list[_SplitFolder]:
    if split is None or split == "all":
        return folders
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


def _extensions_hint() -> str:
    return f"image files are found by extension ({' '.join(sorted(IMAGE_EXTENSIONS))})"


def _empty_class_folders(
    root: Path, selected: list[_SplitFolder], on_bad_file: str
) -> list[SkippedFile]:
    """The class folders without images: an error, or (skip) records for `skipped`."""
    empty = [
        folder.prefix() + name + "/"
        for folder in selected
        for name, files in folder.classes.items()
        if not files
    ]
    if empty and on_bad_file == "error":
        listed = ", ".join(str(root / e) for e in empty[:_LISTED_PROBLEMS])
        raise DataError(
            f"{len(empty)} class folder(s) hold no image files: {listed}. Add images or remove "
            f"the folder(s), or pass on_bad_file='skip' to leave those classes out; "
            f"{_extensions_hint()}"
        )
    reason = "the class folder holds no image files: the class is left out"
    return [SkippedFile(e, reason) for e in empty]


def _bad_files_message(root: Path, bad: list[SkippedFile], total: int) -> str:
    lines = [f"  {b.path}: {b.reason}" for b in bad[:_LISTED_PROBLEMS]]
    if len(bad) > _LISTED_PROBLEMS:
        lines.append(f"  ... and {len(bad) - _LISTED_PROBLEMS} more")
    return (
        f"{len(bad)} of the {total} image files in {root} cannot be used:\n"
        + "\n".join(lines)
        + "\nFix or remove them, or pass on_bad_file='skip' to leave them out."
    )


def _no_face_message(root: Path, bad: list[SkippedFile], total: int, face: FaceStep) -> str:
    lines = [f"  {b.path}" for b in bad[:_LISTED_PROBLEMS]]
    if len(bad) > _LISTED_PROBLEMS:
        lines.append(f"  ... and {len(bad) - _LISTED_PROBLEMS} more")
    other = "haar" if face.detector == "hog" else "hog"
    return (
        f"the {face.detector} detector found no face in {len(bad)} of the {total} images in "
        f"{root}:\n" + "\n".join(lines) + f"\nCheck that they show a face, try detector "
        f"{other!r}, or set the face step's on_no_face to 'skip' to leave them out (listed)."
    )


def _skipped_summary(root: Path, skipped: list[SkippedFile]) -> str:
    first = skipped[0]
    return (
        f"left out {len(skipped)} unusable file(s) or empty class folder(s) of {root} "
        f"(listed in the data's .skipped), e.g. {first.path}: {first.reason}"
    )


def _stack(
    root: Path, paths: list[str], images: list[np.ndarray], channels: int | None
) -> np.ndarray:
    """(N, C, H, W) uint8 from (C_i, H, W) arrays; grayscale is replicated when any image is
    in colour (with `channels=None`)."""
    sizes = Counter(image.shape[1:] for image in images)
    if len(sizes) > 1:
        (common, _), (other, _) = sizes.most_common(2)
        first = {}
        for path, image in zip(paths, images, strict=True):
            first.setdefault(image.shape[1:], path)
        raise DataError(
            f"the images in {root} have {len(sizes)} different sizes, e.g. {first[common]} is "
            f"{common[0]}×{common[1]} and {first[other]} is {other[0]}×{other[1]} (H×W): pass "
            "image_size=(H, W) (`--image-size` on the command line) to resize them all, "
            "with resize='stretch', 'crop' or 'pad'"
        )
    n_channels = channels or max(image.shape[0] for image in images)
    height, width = images[0].shape[1:]
    x = np.empty((len(images), n_channels, height, width), dtype=np.uint8)
    for i, image in enumerate(images):
        x[i] = image  # (1, H, W) broadcasts to (3, H, W)
    return x


def _decode_with_cache(
    folders: list[_SplitFolder], options: _Options, workers: int, use_cache: bool
) -> list[tuple[_SplitFolder, list[_ImageFile], list[np.ndarray | str]]]:
    """Every image file of `folders` (sorted by class, then name) with its outcome: the
    decoded (C, H, W) pixels, or the reason (a str) it cannot be used.

    Files whose size and modification time match the cache's reuse its outcome; the others
    are decoded, all folders' together (one pool of workers).
    """
    plans = []
    pending: list[str] = []
    pending_bytes = 0
    for folder in folders:
        files = [file for name in sorted(folder.classes) for file in folder.classes[name]]
        cache_path = _cache_path(folder.path, options)
        cached = _read_cache(cache_path) if use_cache else {}
        outcomes: list[np.ndarray | str | None] = []
        for file in files:
            hit = cached.get(file.relative)
            if hit is not None and hit[0] == (file.size, file.stamp):
                outcomes.append(hit[1])
            else:
                outcomes.append(None)
                pending.append(str(folder.path / file.relative))
                pending_bytes += file.size
        hits = sum(outcome is not None for outcome in outcomes)
        # Rewritten when a file was added, changed or removed since.
        stale = hits < len(files) or hits < len(cached)
        plans.append((folder, files, outcomes, cache_path, stale))

    if len(pending) < 2 or (
        len(pending) < _MIN_PARALLEL_FILES and pending_bytes < _MIN_PARALLEL_BYTES
    ):
        workers = 1
    decoded = iter(_decode_files(pending, options, workers))
    results = []
    for folder, files, outcomes, cache_path, stale in plans:
        complete = [next(decoded) if outcome is None else outcome for outcome in outcomes]
        if use_cache and stale:
            _write_cache(cache_path, files, complete)
        results.append((folder, files, complete))
    return results


def _cache_path(folder: Path, options: _Options) -> Path:
    key = json.dumps(
        [
            _FORMAT_VERSION,
            str(folder.resolve()),
            options.channels,
            options.size,
            options.resize,
            options.max_pixels,
            PIL.__version__,  # another Pillow may decode (and resize) a little differently
            *(
                [options.face.as_dict(), CROP_VERSION, *_face_library_versions()]
                if options.face
                else []
            ),
        ]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", folder.resolve().name)[:40]
    return cache_dir() / "folders" / f"{readable}-{digest}.npz"


def _read_cache(path: Path) -> dict[str, tuple[tuple[int, int], np.ndarray | str]]:
    """relative path -> ((size, stamp), outcome) from a cache file; {} when there is none
    or it is damaged (the files are then decoded again)."""
    arrays = load_npz(path)
    if arrays is None:
        return {}
    try:
        paths, sizes, stamps = arrays["paths"], arrays["sizes"], arrays["stamps"]
        shapes, reasons, pixels = arrays["shapes"], arrays["reasons"], arrays["pixels"]
        ends = np.cumsum(np.prod(shapes, axis=1))
        consistent = (
            len(paths) == len(sizes) == len(stamps) == len(shapes) == len(reasons)
            and shapes.ndim == 2
            and pixels.dtype == np.uint8
            and (ends[-1] if len(ends) else 0) == pixels.size
        )
    except (KeyError, ValueError):
        return {}
    if not consistent:
        return {}
    entries: dict[str, tuple[tuple[int, int], np.ndarray | str]] = {}
    start = 0
    for i, relative in enumerate(paths.tolist()):
        end = int(ends[i])
        reason = str(reasons[i])
        outcome = reason if reason else pixels[start:end].reshape(tuple(shapes[i]))
        entries[relative] = ((int(sizes[i]), int(stamps[i])), outcome)
        start = end
    return entries


def _write_cache(path: Path, files: list[_ImageFile], outcomes: list[np.ndarray | str]) -> None:
    images = [outcome for outcome in outcomes if isinstance(outcome, np.ndarray)]
    save_npz_atomic(
        path,
        paths=np.array([file.relative for file in files], dtype=str),
        # size -1 never matches: a file that failed for lack of access is tried again
        sizes=np.array(
            [
                -1 if isinstance(o, _PassingReason) else f.size
                for f, o in zip(files, outcomes, strict=True)
            ],
            dtype=np.int64,
        ),
        stamps=np.array([file.stamp for file in files], dtype=np.int64),
        shapes=np.array(
            [o.shape if isinstance(o, np.ndarray) else (0, 0, 0) for o in outcomes],
            dtype=np.int64,
        ).reshape(-1, 3),
        reasons=np.array([o if isinstance(o, str) else "" for o in outcomes], dtype=str),
        pixels=np.concatenate([image.ravel() for image in images])
        if images
        else np.empty(0, dtype=np.uint8),
    )


def _decode_files(paths: list[str], options: _Options, workers: int) -> list[np.ndarray | str]:
    """Decode `paths` in order: the (C, H, W) pixels, or the reason a file cannot be used."""
    if not paths:
        return []
    arguments: tuple = (options.channels, options.size, options.resize, options.max_pixels)
    decode: Callable[..., list[np.ndarray | BadImageError]] = image_files.decode_images
    if options.face is not None:
        from siamese.data.face_crops import crop_face_files

        decode, arguments = crop_face_files, (options.face, *arguments)
    if workers == 1:
        raw = decode(paths, *arguments)
    else:
        raw = _decode_in_pool(decode, paths, arguments, workers)
    return [
        (r.reason if r.lasting else _PassingReason(r.reason)) if isinstance(r, BadImageError) else r
        for r in raw
    ]


def _face_library_versions() -> list[str]:
    """The detector and landmark libraries' versions: another may find other boxes."""
    from siamese.faces.dependencies import require_cv2, require_dlib

    return [require_cv2().__version__, require_dlib().__version__]


def _decode_in_pool(
    decode: Callable[..., list[np.ndarray | BadImageError]],
    paths: list[str],
    arguments: tuple,
    workers: int,
) -> list[np.ndarray | BadImageError]:
    chunk = min(_MAX_CHUNK, math.ceil(len(paths) / (workers * 4)))
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    columns = [repeat(value, len(chunks)) for value in arguments]
    try:
        with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=_pool_context()) as pool:
            return [outcome for part in pool.map(decode, chunks, *columns) for outcome in part]
    except BrokenProcessPool:
        guard = (
            ""
            if sys.platform.startswith("linux")
            else "; outside Linux the workers run your script again: put its code under "
            '`if __name__ == "__main__":`'
        )
        raise DataError(
            f"a worker process died while decoding {len(paths)} image files under "
            f"{os.path.commonpath(paths)} (out of memory, or a crash in an image library"
            f"{guard}): run again with workers=1 to see which file, or lower max_pixels"
        ) from None


def _pool_context() -> multiprocessing.context.BaseContext:
    """fork on Linux, spawn elsewhere.

    Like torch's DataLoader: a forked worker starts in milliseconds and, unlike spawn or
    forkserver, does not run the user's main script again, so a script without an
    `if __name__ == "__main__":` guard works. The workers only run Pillow and numpy, never
    torch, so the threads of the parent's torch pool do not matter to them.
    """
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
