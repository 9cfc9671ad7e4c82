"""The cache of a folder's decoded pixels: one file per split folder and decoding options in
`cache_dir() / "folders"`, each file's outcome (pixels, or why it cannot be used) keyed by its
size and change stamp, so a later load decodes only what is new or changed."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import PIL

from siamese.cache import cache_dir, load_npz, save_npz_atomic
from siamese.data.folders.checks import FolderOptions
from siamese.data.folders.listing import ImageFile
from siamese.faces.preprocessing import CROP_VERSION

_FORMAT_VERSION = 2  # 2: per-file stamps include change time and inode


class PassingReason(str):
    """Why a file could not be read when that is about access, not content: not cached."""


def cache_path(folder: Path, options: FolderOptions) -> Path:
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


def read_cache(path: Path) -> dict[str, tuple[tuple[int, int], np.ndarray | str]]:
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


def write_cache(path: Path, files: list[ImageFile], outcomes: list[np.ndarray | str]) -> None:
    images = [outcome for outcome in outcomes if isinstance(outcome, np.ndarray)]
    save_npz_atomic(
        path,
        paths=np.array([file.relative for file in files], dtype=str),
        # size -1 never matches: a file that failed for lack of access is tried again
        sizes=np.array(
            [
                -1 if isinstance(o, PassingReason) else f.size
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


def _face_library_versions() -> list[str]:
    """The detector and landmark libraries' versions: another may find other boxes."""
    from siamese.faces.dependencies import require_cv2, require_dlib

    return [require_cv2().__version__, require_dlib().__version__]
