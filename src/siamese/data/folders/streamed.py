"""Image folders larger than memory: the images of a folder decoded on demand, batch by batch,
in DataLoader worker processes.

`load_folder(..., stream=True)` (and, by default, any folder whose decoded pixels would pass
`stream_limit_bytes()`) gives a `LabeledData` whose `x` is a `StreamedImages`: the file paths
and how to decode them, shaped like the (N, C, H, W) uint8 tensor it stands for. Labels, class
names and paths are in memory as usual; pixels only for the batches being used.

    images = data.x                                      # StreamedImages (N, C, H, W)
    for x in load_batches(images, sampler, workers=4):   # uint8 (B, C, H, W), in order
        ...
    for x in load_batches(images, ranges(len(images), 256), workers=4):  # everything, in order
        ...

Memory stays bounded: the batches in flight ((workers × prefetch + 1) × B × C × H × W bytes)
plus the file table (about 40 bytes a file), whatever the folder's size. A file is decoded
exactly as the eager load decodes it (same options, same pixels).

Files are checked when the folder is indexed from their headers only (`folder_index`): a file
whose pixel data is corrupt, or that was rewritten after it was indexed, is found when a batch
needs it, and then stops the work with a DataError naming it (a sampled batch cannot leave an
example out).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from siamese.data import image_files
from siamese.data.derived.resized import convert_channels, resize_images
from siamese.data.folders.checks import (
    FolderOptions,
    check_bad_files,
    check_one_size,
    empty_class_folders,
    labeled,
    selected_classes,
    warn_skipped,
)
from siamese.data.folders.listing import folder_index
from siamese.data.image_files import DEFAULT_MAX_PIXELS, RESIZE_MODES, BadImageError
from siamese.data.labeled import LabeledData, SkippedFile, decoded_size
from siamese.errors import ConfigError, DataError
from siamese.faces.preprocessing import FaceStep

STREAM_ABOVE_BYTES = 2 * 2**30
"""With `stream="auto"` (the default), a folder whose decoded pixels (N × C × H × W bytes)
would pass this is streamed instead of decoded up front. The eager load briefly holds about
three times its decoded size (the decoded files, the stacked tensor, and the cache file being
written; 3.1× measured for 100,000 images by benchmarks/bench_streaming.py), so 2 GiB decoded
peaks near 6 GiB: what a 16 GiB machine can spare beside training.
Override with the environment variable SIAMESE_STREAM_ABOVE_BYTES."""
STREAM_LIMIT_VARIABLE = "SIAMESE_STREAM_ABOVE_BYTES"


def stream_limit_bytes() -> int:
    """The decoded size above which `stream="auto"` streams: $SIAMESE_STREAM_ABOVE_BYTES, else
    STREAM_ABOVE_BYTES.

    Raises:
        ConfigError: the variable is not a non-negative integer.
    """
    raw = os.environ.get(STREAM_LIMIT_VARIABLE, "").strip()
    if not raw:
        return STREAM_ABOVE_BYTES
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(
            f"{STREAM_LIMIT_VARIABLE}={raw!r}: give a number of bytes (e.g. 2147483648 for "
            "2 GiB), or unset it for the default"
        )
    return value


def stream_option(value: Any) -> bool | str:
    """Check a `stream` option: True, False or "auto" (the strings "true", "false", "yes",
    "no" from a command line too).

    Raises:
        ConfigError: any other value.
    """
    if isinstance(value, bool) or value == "auto":
        return value
    if isinstance(value, str) and value.strip().lower() in (
        "true",
        "yes",
        "on",
        "false",
        "no",
        "off",
    ):
        return value.strip().lower() in ("true", "yes", "on")
    raise ConfigError(
        f"stream must be true (decode batches on demand), false (decode every image up front) "
        f"or 'auto' (stream above {STREAM_LIMIT_VARIABLE} decoded bytes, default 2 GiB), got "
        f"{value!r}"
    )


@dataclass(frozen=True)
class _Decoding:
    """How every file becomes (C, H, W) uint8 pixels."""

    channels: int  # 1 or 3
    size: tuple[int, int]  # (H, W) of every decoded image
    resize: str | None  # how files are brought to `size`; None: each must already have it
    max_pixels: int
    face: FaceStep | None


class StreamedImages:
    """uint8 images (N, C, H, W) decoded from their files when indexed: a lazy stand-in for
    the `x` tensor of a `LabeledData`, cheap to copy and to pickle (the file table is a few
    numpy arrays, shared by every `take`).

    Args:
        paths: the files, relative to `root` (posix), or absolute when `root` is None.
        shape: (C, H, W) every file decodes to; C is 1 or 3.
        root: the folder `paths` are relative to.
        resize: how a file of another size reaches (H, W): "stretch", "crop" or "pad";
            None: files are not resized (one of another size is an error when decoded).
        max_pixels: larger images are refused unread.
        face: a face step: each file becomes its largest face's crop (then resized to (H, W)
            when `resize` is given); a photo without a face is an error when decoded.
        workers: the DataLoader worker processes that training, evaluation and embedding
            decode these images with (0: in the main process); subsets keep it.
    """

    dtype = torch.uint8
    ndim = 4
    device = torch.device("cpu")

    def __init__(
        self,
        paths: Sequence[str],
        shape: tuple[int, int, int],
        *,
        root: str | os.PathLike[str] | None = None,
        resize: str | None = "stretch",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        face: FaceStep | None = None,
        workers: int = 0,
    ) -> None:
        channels, height, width = (int(v) for v in shape)
        self.workers = int(workers)
        if channels not in (1, 3) or height < 1 or width < 1:
            raise ConfigError(f"shape must be (C, H, W) with C 1 or 3, got {tuple(shape)}")
        if resize is not None and resize not in RESIZE_MODES:
            raise ConfigError(f"resize must be one of {', '.join(RESIZE_MODES)} or None")
        self.root = "" if root is None else str(root)
        encoded = [p.encode("utf-8", "surrogateescape") for p in paths]
        self._ends = np.cumsum([len(e) for e in encoded], dtype=np.int64)
        self._blob = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        self._index = np.arange(len(encoded), dtype=np.int64)
        self._decoding = _Decoding(channels, (height, width), resize, max_pixels, face)
        self._fit: tuple[int, int, int] | None = None

    # --- what a tensor would say ------------------------------------------------------

    @property
    def shape(self) -> torch.Size:
        """(N, C, H, W)."""
        return torch.Size((len(self._index), *self.example_shape))

    @property
    def example_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one decoded image."""
        if self._fit is not None:
            return self._fit
        return (self._decoding.channels, *self._decoding.size)

    @property
    def nbytes(self) -> int:
        """Bytes of all the images decoded at once (what streaming avoids holding)."""
        return int(np.prod(self.shape))

    def dim(self) -> int:
        return 4

    def size(self, dim: int | None = None) -> torch.Size | int:
        return self.shape if dim is None else self.shape[dim]

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        c, h, w = self.example_shape
        where = self.root or "files"
        return f"StreamedImages({len(self):,} images of {c}×{h}×{w} uint8 from {where})"

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the class lacks: a tensor method used on streamed images.
        if not name.startswith("_") and hasattr(torch.Tensor, name):
            raise AttributeError(
                f"{self!r} is streamed from its files: `.{name}` needs every image in memory "
                "as one tensor. Index a batch (x[index]), read them in batches with "
                "siamese.data.batches.load_batches, or load the folder with "
                f"stream=False (data.options.stream: false) if its {decoded_size(self.nbytes)} fit in "
                "memory"
            )
        raise AttributeError(f"'StreamedImages' object has no attribute {name!r}")

    # --- subsets and pixels -----------------------------------------------------------

    def positions(self, key: Any) -> np.ndarray:
        """(M,) int64 positions in 0..N-1 that `key` selects: an int, a slice, a (M,) int64
        or (N,) bool tensor or array, or a list of ints.

        Raises:
            IndexError: a position out of range. TypeError: another kind of key.
        """
        n = len(self._index)
        if isinstance(key, slice):
            return np.arange(n, dtype=np.int64)[key]
        if isinstance(key, torch.Tensor):
            key = key.detach().cpu().numpy()
        array = np.asarray(key)
        if array.dtype == np.bool_:
            if array.shape != (n,):
                raise IndexError(f"a boolean mask of {array.shape} for {n} images")
            return np.flatnonzero(array).astype(np.int64)
        if array.size == 0:
            return np.empty(0, dtype=np.int64)
        if not np.issubdtype(array.dtype, np.integer) or array.ndim > 1:
            raise TypeError(
                f"StreamedImages take an int, a slice or a 1-d integer index, not {key!r}"
            )
        positions = array.astype(np.int64).reshape(-1)
        if positions.min() < -n or positions.max() >= n:
            raise IndexError(f"index out of range for {n} images")
        return np.where(positions < 0, positions + n, positions)

    def take(self, index: Any) -> StreamedImages:
        """The images at `index` (as `positions` reads it), still on disk: nothing is decoded.

        Returns:
            StreamedImages of len(index) images, sharing this one's file table.
        """
        out = object.__new__(StreamedImages)
        out.__dict__.update(self.__dict__)
        out._index = self._index[self.positions(index)]
        return out

    def fitted(self, shape: Sequence[int]) -> StreamedImages:
        """These images converted to `shape` (C, H, W) after decoding, as
        `siamese.data.derived.resized.fitted_to` converts a tensor (luma or repeated channels, then
        antialiased bilinear resizing): the same pixels."""
        out = self.take(slice(None))
        out._fit = (int(shape[0]), int(shape[1]), int(shape[2]))
        return out

    def __getitem__(self, key: Any) -> torch.Tensor:
        """Decode the images `key` selects, in this process (for a batch or a preview; use
        `load_batches` for many).

        Returns:
            uint8 (C, H, W) for an int, (M, C, H, W) otherwise.
        """
        if isinstance(key, (int, np.integer)) or (
            isinstance(key, torch.Tensor) and key.ndim == 0 and not key.is_floating_point()
        ):
            return self.decode_batch(self.positions([int(key)]))[0]
        return self.decode_batch(self.positions(key))

    def file_path(self, position: int) -> str:
        """The file of the image at `position` (0..N-1)."""
        return self._path(int(self._index[position]))

    def _path(self, row: int) -> str:
        start = int(self._ends[row - 1]) if row else 0
        relative = self._blob[start : int(self._ends[row])].tobytes()
        name = relative.decode("utf-8", "surrogateescape")
        return os.path.join(self.root, name) if self.root else name

    def decode_batch(self, positions: np.ndarray) -> torch.Tensor:
        """Decode the images at `positions` ((M,) int64, 0..N-1), in order.

        Returns:
            uint8 (M, C, H, W).
        Raises:
            DataError: a file that cannot be decoded now (changed or corrupt since the folder
                was indexed), in which no face is found, or of another size; the message
                names it and says what to do.
        """
        decoding = self._decoding
        height, width = decoding.size
        rows = self._index[self.positions(positions)]
        out = np.empty((len(rows), decoding.channels, height, width), dtype=np.uint8)
        for k, row in enumerate(rows.tolist()):
            path = self._path(row)
            pixels = _decode(path, decoding)
            if pixels.shape[1:] != (height, width):
                raise DataError(
                    f"{path} decodes to {pixels.shape[1]}×{pixels.shape[2]} pixels, but the "
                    f"images of this folder are {height}×{width} (H×W): it changed since the "
                    "folder was indexed. Replace it with an image of that size, or pass "
                    "image_size=(H, W) to resize every image"
                )
            out[k] = pixels
        x = torch.from_numpy(out)
        if self._fit is not None:
            x = resize_images(convert_channels(x, self._fit[0]), self._fit[1:])
        return x


def _decode(path: str, decoding: _Decoding) -> np.ndarray:
    """(C, H, W) uint8 pixels of one file, or DataError."""
    size = decoding.size if decoding.resize is not None else None
    resize = decoding.resize or "stretch"
    try:
        if decoding.face is None:
            return image_files.decode_image(
                path, decoding.channels, size, resize, decoding.max_pixels
            )
        from siamese.data.folders.face_crops import crop_face_files

        (outcome,) = crop_face_files(
            [path], decoding.face, decoding.channels, size, resize, decoding.max_pixels
        )
        if isinstance(outcome, BadImageError):
            raise outcome
        return outcome
    except BadImageError as err:
        if not err.lasting:
            what = "Check that it is still there and that you may read it"
        elif decoding.face is not None and err.reason.startswith("no face"):
            what = (
                "Streaming cannot leave a photo out once it is sampled: remove the photo, or "
                "load the folder with stream=False and the face step's on_no_face 'skip'"
            )
        else:
            what = (
                "It passed the header check when the folder was indexed (streaming decodes "
                "pixels only when a batch needs them), so it changed since or its pixel data "
                "is damaged"
            )
        raise DataError(f"{path}: {err.reason}. {what}") from None


def load_streamed(
    root: Path,
    split: str | None,
    options: FolderOptions,
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
    selected, classes = selected_classes(root, folders, split)

    skipped = empty_class_folders(root, selected, on_bad_file)
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
    check_bad_files(root, len(paths), bad, on_bad_file, options.face)
    skipped += bad
    warn_skipped(root, skipped)

    if options.size is not None:
        size = options.size
    elif options.face is not None:
        size = (options.face.size, options.face.size)
    else:
        check_one_size(root, paths, sizes)
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
    return labeled(root, x, labels, splits, split_names, classes, paths, skipped)
