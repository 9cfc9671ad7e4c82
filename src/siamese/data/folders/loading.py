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

import os
from pathlib import Path
from typing import Any

from siamese.data import image_files
from siamese.data.folders.checks import (
    ON_BAD_FILE,
    FolderOptions,
    check_options,
    check_root,
    check_workers,
)
from siamese.data.folders.decoded import load_decoded
from siamese.data.folders.listing import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
from siamese.data.folders.listing import SPLIT_NAMES as SPLIT_NAMES
from siamese.data.folders.listing import count_image_files, first_image_file
from siamese.data.folders.streamed import load_streamed, stream_limit_bytes, stream_option
from siamese.data.image_files import DEFAULT_MAX_PIXELS, BadImageError
from siamese.data.labeled import LabeledData
from siamese.errors import ConfigError


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
            first image) would pass `streamed.stream_limit_bytes()` (2 GiB, or
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
    options = check_options(image_size, channels, resize, max_pixels, face)
    if on_bad_file not in ON_BAD_FILE:
        raise ConfigError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
    n_workers = check_workers(workers)
    streaming = stream_option(stream)
    root = check_root(Path(path).expanduser())
    if streaming == "auto":
        streaming = _decoded_estimate(root, split, options) > stream_limit_bytes()
    if streaming:
        return load_streamed(root, split, options, on_bad_file, n_workers, use_cache)
    return load_decoded(root, split, options, on_bad_file, n_workers, use_cache)


def _decoded_estimate(root: Path, split: str | None, options: FolderOptions) -> int:
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
