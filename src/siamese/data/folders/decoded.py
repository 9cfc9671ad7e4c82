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
import numbers
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import torch

from siamese.cache import cache_dir, load_npz, save_npz_atomic
from siamese.data import image_files
from siamese.data.folders.listing import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
from siamese.data.folders.listing import (
    LAYOUT,
    ImageFile,
    SplitFolder,
    count_image_files,
    default_workers,
    extensions_hint,
    first_image_file,
    folder_index,
    map_in_pool,
    select_splits,
    split_folders,
)
from siamese.data.folders.listing import SPLIT_NAMES as SPLIT_NAMES
from siamese.data.folders.streamed import StreamedImages, stream_limit_bytes, stream_option
from siamese.data.image_files import DEFAULT_MAX_PIXELS, RESIZE_MODES, BadImageError
from siamese.data.labeled import LabeledData, SkippedFile, warn_single_sample_classes
from siamese.errors import ConfigError, DataError
from siamese.faces.preprocessing import CROP_VERSION, NO_FACE, FaceStep, face_step

ON_BAD_FILE = ("error", "skip")

_FORMAT_VERSION = 2  # 2: per-file stamps include change time and inode
# Forking the workers and sending the pixels back costs some 30 ms: measured on 2 cores, 300
# small PNGs decode as fast here as in a pool, 3,000 take 1.5x less time in two workers. A pool
# is used from this many files, or this many bytes of files (a few large photos).
_MIN_PARALLEL_FILES = 256
_MIN_PARALLEL_BYTES = 16 * 2**20
_LISTED_PROBLEMS = 10


@dataclass(frozen=True)
class _Options:
    """What decides the decoded pixels of a file (and so the cache key)."""

    channels: int | None
    size: tuple[int, int] | None
    resize: str
    max_pixels: int
    face: FaceStep | None = None


class _PassingReason(str):
    """Why a file could not be read when that is about access, not content: not cached."""


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
    stream: bool | str = "auto",
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
        stream: True: decode nothing up front; x is a `StreamedImages` that decodes the files
            a batch needs, when it needs them (`siamese.data.folders.streamed`), so memory stays
            bounded whatever the folder's size. The file list and each file's header are read
            once (100,000 files in some 15 s on 2 cores) and kept in the cache; a file with
            corrupt pixel data is reported only when it is decoded. False: decode every image
            now (and cache the pixels). "auto": stream when the decoded pixels (N × C × H × W
            bytes, C = 3 unless `channels` says, H × W from `image_size`, the face step or the
            first image) would pass `streamed_folder.stream_limit_bytes()` (2 GiB, or
            $SIAMESE_STREAM_ABOVE_BYTES). Streaming with a face step needs its on_no_face
            "error" (a photo without a face cannot be left out once it is sampled).
    Returns:
        LabeledData with x uint8 (N, C, H, W) (a StreamedImages when streamed), y int64 (N,)
        indexing `classes` (the sorted class folder names), `paths` relative to PATH, sorted
        by split, class and file name, `skipped` the files left out; with splits,
        meta["split"] int64 (N,) indexing meta_names["split"].
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
    streaming = stream_option(stream)
    root = _check_root(Path(path).expanduser())
    if streaming == "auto":
        streaming = _decoded_estimate(root, split, options) > stream_limit_bytes()
    if streaming:
        return _load_streamed(root, split, options, on_bad_file, n_workers, use_cache)
    folders = split_folders(root)
    selected = select_splits(root, folders, split)
    classes = sorted({name for f in folders for name, files in f.classes.items() if files})
    if not any(files for f in selected for files in f.classes.values()):
        where = ", ".join(str(f.path) for f in selected)
        raise DataError(f"no image files in {where}: {LAYOUT}; {extensions_hint()}")

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
    labels = [class_id[name] for _, name, _, _ in good]
    splits = [s for _, _, s, _ in good]
    return _labeled(root, torch.from_numpy(x), labels, splits, split_names, classes, paths, skipped)


def _decoded_estimate(root: Path, split: str | None, options: _Options) -> int:
    """N × C × H × W: the bytes the folder's images would take decoded, from the number of
    files (names only), C from `channels` (else 3), H × W from `image_size`, the face step or
    the first image's header (0 when that cannot be read: the eager load then says why)."""
    n = count_image_files(root, split)
    first = first_image_file(root, split)
    if n == 0 or first is None:
        return 0
    if options.size is not None:
        height, width = options.size
    elif options.face is not None:
        height = width = options.face.size
    else:
        try:
            height, width, _ = image_files.probe_image(first)
        except BadImageError:
            return 0
    return n * (options.channels or 3) * height * width


def _load_streamed(
    root: Path,
    split: str | None,
    options: _Options,
    on_bad_file: str,
    workers: int,
    use_cache: bool,
) -> LabeledData:
    """`load_folder` with x a StreamedImages: the same checks, order, labels and paths, from
    the folder's index (`folder_index`) instead of its decoded pixels."""
    if options.face is not None and options.face.on_no_face == "skip":
        raise ConfigError(
            f"{root} is streamed (stream=True, or its decoded images would pass "
            f"{stream_limit_bytes():,} bytes), and streaming cannot leave out the photos without "
            "a face that the face step's on_no_face 'skip' asks for: each is known only once "
            "it is decoded. Set on_no_face to 'error' (a photo without a face then stops the "
            "work, named), or load with stream=False"
        )
    folders = folder_index(root, workers, use_cache).splits
    selected = select_splits(root, folders, split)
    classes = sorted({name for f in folders for name, files in f.classes.items() if len(files)})
    if not any(len(files) for f in selected for files in f.classes.values()):
        where = ", ".join(str(f.path) for f in selected)
        raise DataError(f"no image files in {where}: {LAYOUT}; {extensions_hint()}")

    skipped = _empty_class_folders(root, selected, on_bad_file)
    split_names = [f.name for f in folders if f.name is not None]
    class_id = {name: i for i, name in enumerate(classes)}
    paths: list[str] = []
    labels: list[int] = []
    splits: list[int] = []
    sizes: list[tuple[int, int]] = []
    colour = False
    bad: list[SkippedFile] = []
    for folder in selected:
        split_index = split_names.index(folder.name) if folder.name is not None else 0
        for name in sorted(folder.classes):
            listed = folder.classes[name]
            heights, widths = listed.heights.tolist(), listed.widths.tolist()
            channels = listed.channels.tolist()
            for i, file in enumerate(listed.files):
                relative = f"{folder.prefix()}{name}/{file}"
                reason = listed.reasons[i]
                if not reason and heights[i] * widths[i] > options.max_pixels:
                    reason = image_files.too_many_pixels_reason(
                        widths[i], heights[i], options.max_pixels
                    )
                if reason:
                    bad.append(SkippedFile(relative, reason))
                    continue
                paths.append(relative)
                labels.append(class_id[name])
                splits.append(split_index)
                sizes.append((heights[i], widths[i]))
                colour = colour or channels[i] == 3
    if bad and on_bad_file == "error":
        raise DataError(_bad_files_message(root, bad, len(paths) + len(bad)))
    skipped += bad
    if not paths:
        raise DataError(
            f"none of the {len(bad)} image files in {root} can be used, e.g. {bad[0].path}: "
            f"{bad[0].reason}"
        )
    if skipped:
        warnings.warn(_skipped_summary(root, skipped), stacklevel=3)

    if options.size is not None:
        size = options.size
    elif options.face is not None:
        size = (options.face.size, options.face.size)
    else:
        _check_one_size(root, paths, sizes)
        size = sizes[0]
    n_channels = options.channels or (3 if colour or options.face is not None else 1)
    x = StreamedImages(
        paths,
        (n_channels, *size),
        root=root,
        resize=options.resize if options.size is not None else None,
        max_pixels=options.max_pixels,
        face=options.face,
        workers=workers,
    )
    return _labeled(root, x, labels, splits, split_names, classes, paths, skipped)


def _labeled(
    root: Path,
    x: torch.Tensor | StreamedImages,
    labels: list[int],
    splits: list[int],
    split_names: list[str],
    classes: list[str],
    paths: list[str],
    skipped: list[SkippedFile],
) -> LabeledData:
    """The folder's `LabeledData` (decoded or streamed `x`), with each example's split as
    `meta["split"]` when the folder has splits; warns about classes of one example."""
    meta: dict[str, torch.Tensor] = {}
    meta_names: dict[str, list[str]] = {}
    if split_names:
        meta["split"] = torch.tensor(splits, dtype=torch.int64)
        meta_names["split"] = split_names
    data = LabeledData(
        x=x,
        y=torch.tensor(labels, dtype=torch.int64),
        classes=classes,
        meta=meta,
        meta_names=meta_names,
        paths=paths,
        skipped=skipped,
    )
    warn_single_sample_classes(data, str(root))
    return data


def _sort_outcomes(
    results: list[tuple[SplitFolder, list[ImageFile], list[np.ndarray | str]]],
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
        return default_workers()
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer or None, got {workers!r}")
    return workers


def _check_root(root: Path) -> Path:
    if not root.exists():
        raise DataError(f"the image folder {root} does not exist: {LAYOUT}")
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder: {LAYOUT}")
    return root


def _empty_class_folders(
    root: Path, selected: list[SplitFolder], on_bad_file: str
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
            f"{extensions_hint()}"
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
    _check_one_size(root, paths, [image.shape[1:] for image in images])
    n_channels = channels or max(image.shape[0] for image in images)
    height, width = images[0].shape[1:]
    x = np.empty((len(images), n_channels, height, width), dtype=np.uint8)
    for i, image in enumerate(images):
        x[i] = image  # (1, H, W) broadcasts to (3, H, W)
    return x


def _check_one_size(root: Path, paths: list[str], sizes: Sequence[tuple[int, ...]]) -> None:
    """DataError naming two files of different sizes ((H, W) each), if there are any."""
    counts = Counter(sizes)
    if len(counts) > 1:
        (common, _), (other, _) = counts.most_common(2)
        first: dict[tuple[int, ...], str] = {}
        for path, size in zip(paths, sizes, strict=True):
            first.setdefault(size, path)
        raise DataError(
            f"the images in {root} have {len(sizes)} different sizes, e.g. {first[common]} is "
            f"{common[0]}×{common[1]} and {first[other]} is {other[0]}×{other[1]} (H×W): pass "
            "image_size=(H, W) (`--image-size` on the command line) to resize them all, "
            "with resize='stretch', 'crop' or 'pad'"
        )


def _decode_with_cache(
    folders: list[SplitFolder], options: _Options, workers: int, use_cache: bool
) -> list[tuple[SplitFolder, list[ImageFile], list[np.ndarray | str]]]:
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


def _write_cache(path: Path, files: list[ImageFile], outcomes: list[np.ndarray | str]) -> None:
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
        from siamese.data.folders.face_crops import crop_face_files

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
    return map_in_pool(decode, paths, arguments, workers, "decoding")
