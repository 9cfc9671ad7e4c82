"""The checks and messages that both loads of an image folder share (the decoded load in
`decoded`, the streamed one in `streamed`), written once: the options, the folder, which
classes are selected, empty class folders, unusable files, one image size, and the
`LabeledData` either load gives."""

from __future__ import annotations

import numbers
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from siamese.data.folders.listing import (
    LAYOUT,
    SplitFolder,
    default_workers,
    extensions_hint,
    select_splits,
)
from siamese.data.image_files import RESIZE_MODES
from siamese.data.labeled import Inputs, LabeledData, SkippedFile, warn_single_sample_classes
from siamese.errors import ConfigError, DataError
from siamese.faces.preprocessing import NO_FACE, FaceStep, face_step

ON_BAD_FILE = ("error", "skip")
LISTED_PROBLEMS = 10


@dataclass(frozen=True)
class FolderOptions:
    """What decides the decoded pixels of a file (and so the cache key)."""

    channels: int | None
    size: tuple[int, int] | None
    resize: str
    max_pixels: int
    face: FaceStep | None = None


def selected_classes(
    root: Path, folders: Sequence[Any], split: str | None
) -> tuple[list[Any], list[str]]:
    """The split folders `split` selects, and the sorted names of every class with files in any
    split (so a class has one id in every split); DataError when the selection has no image."""
    selected = select_splits(root, folders, split)
    classes = sorted({name for f in folders for name, files in f.classes.items() if len(files)})
    if not any(len(files) for f in selected for files in f.classes.values()):
        where = ", ".join(str(f.path) for f in selected)
        raise DataError(f"no image files in {where}: {LAYOUT}; {extensions_hint()}")
    return selected, classes


def check_bad_files(
    root: Path, usable: int, bad: list[SkippedFile], on_bad_file: str, face: FaceStep | None
) -> None:
    """DataError when a file cannot be used and `on_bad_file` is "error", when the face step
    found no face and its on_no_face is "error", or when no file at all can be used."""
    faceless = [b for b in bad if b.reason.startswith(NO_FACE)]
    unreadable = [b for b in bad if not b.reason.startswith(NO_FACE)]
    if unreadable and on_bad_file == "error":
        raise DataError(_bad_files_message(root, unreadable, usable + len(bad)))
    if faceless and face is not None and face.on_no_face == "error":
        raise DataError(_no_face_message(root, faceless, usable + len(bad), face))
    if not usable:
        raise DataError(
            f"none of the {len(bad)} image files in {root} can be used, e.g. {bad[0].path}: "
            f"{bad[0].reason}"
        )


def warn_skipped(root: Path, skipped: list[SkippedFile]) -> None:
    """One warning for everything left out, pointing at the caller of `load_folder`."""
    if skipped:
        warnings.warn(_skipped_summary(root, skipped), stacklevel=4)


def check_options(
    image_size: tuple[int, int] | int | None,
    channels: int | None,
    resize: str,
    max_pixels: int,
    face: Any = None,
) -> FolderOptions:
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
    return FolderOptions(channels, size, resize, max_pixels, step)


def check_workers(workers: int | None) -> int:
    if workers is None:
        return default_workers()
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer or None, got {workers!r}")
    return workers


def check_root(root: Path) -> Path:
    if not root.exists():
        raise DataError(f"the image folder {root} does not exist: {LAYOUT}")
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder: {LAYOUT}")
    return root


def empty_class_folders(
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
        listed = ", ".join(str(root / e) for e in empty[:LISTED_PROBLEMS])
        raise DataError(
            f"{len(empty)} class folder(s) hold no image files: {listed}. Add images or remove "
            f"the folder(s), or pass on_bad_file='skip' to leave those classes out; "
            f"{extensions_hint()}"
        )
    reason = "the class folder holds no image files: the class is left out"
    return [SkippedFile(e, reason) for e in empty]


def _bad_files_message(root: Path, bad: list[SkippedFile], total: int) -> str:
    lines = [f"  {b.path}: {b.reason}" for b in bad[:LISTED_PROBLEMS]]
    if len(bad) > LISTED_PROBLEMS:
        lines.append(f"  ... and {len(bad) - LISTED_PROBLEMS} more")
    return (
        f"{len(bad)} of the {total} image files in {root} cannot be used:\n"
        + "\n".join(lines)
        + "\nFix or remove them, or pass on_bad_file='skip' to leave them out."
    )


def _no_face_message(root: Path, bad: list[SkippedFile], total: int, face: FaceStep) -> str:
    lines = [f"  {b.path}" for b in bad[:LISTED_PROBLEMS]]
    if len(bad) > LISTED_PROBLEMS:
        lines.append(f"  ... and {len(bad) - LISTED_PROBLEMS} more")
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


def check_one_size(root: Path, paths: list[str], sizes: Sequence[tuple[int, ...]]) -> None:
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


def labeled(
    root: Path,
    x: Inputs,
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
