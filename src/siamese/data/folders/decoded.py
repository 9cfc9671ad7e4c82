"""An image folder decoded into memory: every file decoded by a pool of worker processes, the
pixels cached (`decoded_cache`) so that a later load decodes only the files that are new or
changed since, then stacked into one uint8 (N, C, H, W) tensor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from siamese.data import image_files
from siamese.data.folders.checks import (
    FolderOptions,
    check_bad_files,
    check_one_size,
    empty_class_folders,
    labeled,
    selected_classes,
    warn_skipped,
)
from siamese.data.folders.decoded_cache import PassingReason, cache_path, read_cache, write_cache
from siamese.data.folders.listing import ImageFile, SplitFolder, map_in_pool, split_folders
from siamese.data.image_files import BadImageError
from siamese.data.labeled import LabeledData, SkippedFile

# Forking the workers and sending the pixels back costs some 30 ms: measured on 2 cores, 300
# small PNGs decode as fast here as in a pool, 3,000 take 1.5x less time in two workers. A pool
# is used from this many files, or this many bytes of files (a few large photos).
_MIN_PARALLEL_FILES = 256
_MIN_PARALLEL_BYTES = 16 * 2**20


def load_decoded(
    root: Path,
    split: str | None,
    options: FolderOptions,
    on_bad_file: str,
    n_workers: int,
    use_cache: bool,
) -> LabeledData:
    """`load_folder` with every image decoded now (and its pixels cached): x uint8
    (N, C, H, W) in memory."""
    folders = split_folders(root)
    selected, classes = selected_classes(root, folders, split)

    skipped = empty_class_folders(root, selected, on_bad_file)
    split_names = [f.name for f in folders if f.name is not None]
    good, bad = _sort_outcomes(
        _decode_with_cache(selected, options, n_workers, use_cache), split_names
    )
    check_bad_files(root, len(good), bad, on_bad_file, options.face)
    skipped += bad
    warn_skipped(root, skipped)

    paths = [relative for relative, *_ in good]
    x = _stack(root, paths, [pixels for *_, pixels in good], options.channels)
    class_id = {name: i for i, name in enumerate(classes)}
    labels = [class_id[name] for _, name, _, _ in good]
    splits = [s for _, _, s, _ in good]
    return labeled(root, torch.from_numpy(x), labels, splits, split_names, classes, paths, skipped)


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


def _stack(
    root: Path, paths: list[str], images: list[np.ndarray], channels: int | None
) -> np.ndarray:
    """(N, C, H, W) uint8 from (C_i, H, W) arrays; grayscale is replicated when any image is
    in colour (with `channels=None`)."""
    check_one_size(root, paths, [image.shape[1:] for image in images])
    n_channels = channels or max(image.shape[0] for image in images)
    height, width = images[0].shape[1:]
    x = np.empty((len(images), n_channels, height, width), dtype=np.uint8)
    for i, image in enumerate(images):
        x[i] = image  # (1, H, W) broadcasts to (3, H, W)
    return x


def _decode_with_cache(
    folders: list[SplitFolder], options: FolderOptions, workers: int, use_cache: bool
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
        cache_file = cache_path(folder.path, options)
        cached = read_cache(cache_file) if use_cache else {}
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
        plans.append((folder, files, outcomes, cache_file, stale))

    if len(pending) < 2 or (
        len(pending) < _MIN_PARALLEL_FILES and pending_bytes < _MIN_PARALLEL_BYTES
    ):
        workers = 1
    decoded = iter(_decode_files(pending, options, workers))
    results = []
    for folder, files, outcomes, cache_file, stale in plans:
        complete = [next(decoded) if outcome is None else outcome for outcome in outcomes]
        if use_cache and stale:
            write_cache(cache_file, files, complete)
        results.append((folder, files, complete))
    return results


def _decode_files(paths: list[str], options: FolderOptions, workers: int) -> list[np.ndarray | str]:
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
        (r.reason if r.lasting else PassingReason(r.reason)) if isinstance(r, BadImageError) else r
        for r in raw
    ]


def _decode_in_pool(
    decode: Callable[..., list[np.ndarray | BadImageError]],
    paths: list[str],
    arguments: tuple,
    workers: int,
) -> list[np.ndarray | BadImageError]:
    return map_in_pool(decode, paths, arguments, workers, "decoding")
