"""Decoding one image file into a uint8 (C, H, W) array, through Pillow.

This module runs in the worker processes of `siamese.data.folders.decoded`, so it imports only the
standard library, numpy and Pillow (no torch): a worker should start in a fraction of a second.

Every image becomes 8-bit grayscale (C = 1) or RGB (C = 3): 16-bit grayscale is scaled to 8 bits
(65535 → 255), CMYK and other colour spaces become RGB, palettes become RGB (or grayscale when
the image's colours are all gray), and transparency is composited onto white. The EXIF
orientation of camera photos is applied, so an image looks as it does in an image viewer.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from siamese.errors import DataError  # light: no torch

RESIZE_MODES = ("stretch", "crop", "pad")
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb limit

# Pillow picks the decoder from the file's content, not its name; limiting the choice to these
# formats keeps plugins that run external programs (EPS runs Ghostscript) out of reach of a
# stray file. GIF covers misnamed downloads; the JPEG reader also opens cameras' MPO files.
_FORMATS = ("JPEG", "PNG", "PPM", "BMP", "WEBP", "TIFF", "GIF")
_FORMAT_NAMES = "JPEG, PNG, PGM/PPM/PBM, BMP, WebP or TIFF"
# LANCZOS after an integer box reduction down to 3× the target: indistinguishable from plain
# LANCZOS, and much faster when a large photo becomes a small thumbnail.
_RESAMPLE = Image.Resampling.LANCZOS
_REDUCING_GAP = 3.0
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # these rotate by 90°: width and height swap
_COLOUR_MODES = ("RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")


class BadImageError(Exception):
    """A file that cannot be used as an image: `reason` says what is wrong and what to do.

    `lasting` is False when the failure is about access rather than content (a permission, a
    file that vanished): fixing that does not change the file, so it must not be remembered.
    Its arguments are two strings and a bool, so it pickles across process boundaries.
    """

    def __init__(self, path: str, reason: str, lasting: bool = True) -> None:
        super().__init__(path, reason, lasting)
        self.path = path
        self.reason = reason
        self.lasting = lasting

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def decode_image(
    path: str,
    channels: int | None = None,
    size: tuple[int, int] | None = None,
    resize: str = "stretch",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode one image file.

    Args:
        path: the image file (any format Pillow reads among JPEG, PNG, PNM, BMP, WebP, TIFF).
        channels: 1 (grayscale) or 3 (RGB); None keeps the image's own kind (1 for grayscale
            and gray palettes, 3 for colour).
        size: (H, W) to resize to; None keeps the image's size.
        resize: how to reach `size` when the aspect ratio differs: "stretch" (distort),
            "crop" (centre-crop to the target aspect ratio, then resize) or "pad" (fit inside,
            centred, black borders).
        max_pixels: images with more pixels are refused before their pixels are decoded.
    Returns:
        uint8 (C, H, W) array, C = 1 or 3.
    Raises:
        BadImageError: the file is empty, not an image, corrupt, truncated, too large or in a
            pixel mode this cannot convert.
    """
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise BadImageError(path, "the file is empty (0 bytes): re-copy it or delete it")
    return _decode(path, path, channels, size, resize, max_pixels)


def decode_image_bytes(
    data: bytes,
    name: str,
    channels: int | None = None,
    size: tuple[int, int] | None = None,
    resize: str = "stretch",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """`decode_image` for the contents of an image file held in memory (an upload): the
    same formats, checks (by content, never by name), EXIF orientation and conversions.

    Args:
        name: how errors name it (e.g. the upload's field and file name).
    Raises:
        BadImageError: empty, not an image, corrupt, truncated or too large.
    """
    if not data:
        raise BadImageError(name, "the image is empty (0 bytes)")
    return _decode(io.BytesIO(data), name, channels, size, resize, max_pixels)


def probe_image_bytes(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """Check an image file in memory from its header alone, without decoding its pixels: its
    format (by content, whatever it is named), and its size against `max_pixels`.

    Returns:
        The format's name ("JPEG", "PNG", …).
    Raises:
        BadImageError: empty, not an image in a format this reads, or too many pixels.
    """
    if not data:
        raise BadImageError(name, "the image is empty (0 bytes)")
    try:
        image = _open(io.BytesIO(data), max_pixels, name)
    except BadImageError:
        raise
    except Exception as err:
        raise BadImageError(name, _failure_reason(err)) from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise BadImageError(name, too_many_pixels_reason(width, height, max_pixels))
        return str(image.format)


def _decode(
    source: str | io.BytesIO,
    path: str,
    channels: int | None,
    size: tuple[int, int] | None,
    resize: str,
    max_pixels: int,
) -> np.ndarray:
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 or 3, got {channels!r}")
    try:
        image = _open(source, max_pixels, path)
    except (BadImageError, MemoryError):
        raise
    except Exception as err:  # a broken header, in any of Pillow's exception types
        # OSErrors with an errno come from the file system, not from the file's content.
        access = isinstance(err, OSError) and err.errno is not None
        raise BadImageError(path, _failure_reason(err), lasting=not access) from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise BadImageError(path, too_many_pixels_reason(width, height, max_pixels))
        try:
            orientation = _orientation(image)
            if size is not None:
                _request_draft(image, size, resize, orientation)
            image.load()
            if orientation is not None and orientation != 1:
                image = ImageOps.exif_transpose(image)
            converted = _to_gray_or_rgb(image)
        # Pillow's decoders report broken data with many exception types; whatever the type,
        # it is this file that is unusable.
        except MemoryError:
            raise
        except Exception as err:
            raise BadImageError(path, _failure_reason(err)) from None
    if converted is None:
        raise BadImageError(path, _unsupported_mode_reason(image.mode))
    return _finish(converted, channels, size, resize)


def image_array(
    image: Image.Image,
    name: str,
    channels: int | None = None,
    size: tuple[int, int] | None = None,
    resize: str = "stretch",
) -> np.ndarray:
    """An image already in memory (a PIL image) prepared exactly as `decode_image` prepares a
    decoded file: converted to 8-bit grey or RGB (transparency onto white), then to
    `channels` and `size`.

    Args:
        image: a loaded PIL image (any mode `decode_image` accepts).
        name: how errors name it (e.g. "image 3 of the call").
    Returns:
        uint8 (C, H, W) array, C = 1 or 3.
    Raises:
        BadImageError: a pixel mode this cannot convert.
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    converted = _to_gray_or_rgb(image)
    if converted is None:
        raise BadImageError(name, _unsupported_mode_reason(image.mode))
    return _finish(converted, channels, size, resize)


def decode_images(
    paths: list[str],
    channels: int | None,
    size: tuple[int, int] | None,
    resize: str,
    max_pixels: int,
) -> list[np.ndarray | BadImageError]:
    """`decode_image` for each path, with the error in place of the array for a bad file
    (one task of a process pool: an error must not lose the rest of the chunk)."""
    results: list[np.ndarray | BadImageError] = []
    for path in paths:
        try:
            results.append(decode_image(path, channels, size, resize, max_pixels))
        except BadImageError as err:
            results.append(err)
    return results


_GREY_MODES = ("1", "L", "LA", "La", "I")


def probe_image(path: str) -> tuple[int, int, int]:
    """What `decode_image(path)` (channels=None, no resize) would give, from the file's header
    alone: its height and width after the EXIF orientation, and its channels (1 grey, 3
    colour). Palette images are decoded (their colours tell grey from colour) when they have
    at most DEFAULT_MAX_PIXELS pixels, else counted as colour.

    Returns:
        (height, width, channels).
    Raises:
        BadImageError: the file is empty, not an image in a format this reads, its header is
            corrupt, or its pixel mode is not supported. Corrupt pixel data is not found here.
    """
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise BadImageError(path, "the file is empty (0 bytes): re-copy it or delete it")
    try:
        image = _open(path, DEFAULT_MAX_PIXELS, path)
    except BadImageError:
        raise
    except Exception as err:
        access = isinstance(err, OSError) and err.errno is not None
        raise BadImageError(path, _failure_reason(err), lasting=not access) from None
    with image:
        try:
            width, height = image.size
            if _orientation(image) in _TRANSPOSED_ORIENTATIONS:
                width, height = height, width
            mode = image.mode
            if mode.startswith("I;16") or mode in _GREY_MODES:
                channels = 1
            elif mode in _COLOUR_MODES:
                channels = 3
            elif mode in ("P", "PA"):
                channels = 3
                if width * height <= DEFAULT_MAX_PIXELS:
                    image.load()
                    channels = 1 if _palette_to_gray_or_rgb(image).mode == "L" else 3
            else:
                raise BadImageError(path, _unsupported_mode_reason(mode))
        except (BadImageError, MemoryError):
            raise
        except Exception as err:
            raise BadImageError(path, _failure_reason(err)) from None
    return height, width, channels


def probe_images(paths: list[str]) -> list[tuple[int, int, int] | BadImageError]:
    """`probe_image` for each path, with the error in place of a bad file's result (one task
    of a process pool)."""
    results: list[tuple[int, int, int] | BadImageError] = []
    for path in paths:
        try:
            results.append(probe_image(path))
        except BadImageError as err:
            results.append(err)
    return results


def _open(source: str | io.BytesIO, max_pixels: int, path: str) -> Image.Image:
    """Read the header only (Pillow decodes pixels lazily, on `load`)."""
    with warnings.catch_warnings():
        # Pillow warns past its own limit; the caller applies `max_pixels` instead.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(source, formats=_FORMATS)
        except Image.DecompressionBombError as err:
            # Past twice its limit Pillow refuses to open at all; the size is in the message.
            raise BadImageError(
                path,
                f"the image has more pixels than Pillow accepts ({err}; max_pixels = "
                f"{max_pixels:,}), a decompression bomb or a very large image: downscale it, "
                "or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file",
            ) from None
        except UnidentifiedImageError:
            raise BadImageError(
                path,
                f"the file is not an image in a format this reads ({_FORMAT_NAMES}), or its "
                "header is corrupt: re-export it in one of those formats, or move it out of "
                "the folder",
            ) from None


def _unsupported_mode_reason(mode: str) -> str:
    return (
        f"its pixel mode {mode!r} is not supported (8- or 16-bit grayscale, palette, RGB, RGBA "
        "and CMYK are): convert it to an 8-bit PNG or JPEG"
    )


def too_many_pixels_reason(width: int, height: int, max_pixels: int) -> str:
    return (
        f"the image is {width}×{height} = {width * height:,} pixels, more than "
        f"max_pixels = {max_pixels:,} (a decompression bomb, or a very large image): downscale "
        "it, or raise max_pixels if you trust the file"
    )


def _failure_reason(err: Exception) -> str:
    if isinstance(err, OSError) and err.errno is not None:  # the OS refused, not Pillow
        return (
            f"the file cannot be read ({err.strerror or err}): check that it exists and that "
            "you may read it"
        )
    if isinstance(err, MemoryError):
        return "there is not enough memory to decode it: downscale it, or lower max_pixels"
    detail = f"{type(err).__name__}: {err}"
    if "truncated" in str(err):
        return f"the file is truncated ({detail}): re-copy or re-download it, or delete it"
    return f"the image data is corrupt ({detail}): re-copy or re-export the file, or delete it"


def _orientation(image: Image.Image) -> int | None:
    """The EXIF orientation tag (1 to 8), or None; only formats that carry EXIF are asked."""
    if image.format not in ("JPEG", "MPO", "PNG", "WEBP", "TIFF"):
        return None
    value = image.getexif().get(_EXIF_ORIENTATION)
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _request_draft(
    image: Image.Image, size: tuple[int, int], resize: str, orientation: int | None
) -> None:
    """Let JPEG decode at 1/2, 1/4 or 1/8 scale when the result is still at least as large as
    what the resize needs (a no-op for other formats)."""
    width, height = image.size
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    target_h, target_w = size
    if resize == "stretch":
        need_w, need_h = target_w, target_h
    else:
        pick = max if resize == "crop" else min
        scale = pick(target_w / width, target_h / height)
        need_w, need_h = math.ceil(width * scale), math.ceil(height * scale)
    if need_w >= width or need_h >= height:
        return
    if orientation in _TRANSPOSED_ORIENTATIONS:
        need_w, need_h = need_h, need_w
    image.draft(image.mode, (need_w, need_h))


def _to_gray_or_rgb(image: Image.Image) -> Image.Image | None:
    """An 8-bit "L" or "RGB" image, transparency composited onto white; None for a pixel mode
    this does not convert (32-bit float, for one)."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        return _sixteen_bit_to_gray(image)
    if mode in ("P", "PA"):
        return _palette_to_gray_or_rgb(image)
    if mode == "1":
        return image.convert("L")
    if "transparency" in image.info and mode in ("L", "RGB"):
        image = image.convert("LA" if mode == "L" else "RGBA")
        mode = image.mode
    if mode in ("LA", "La"):
        return _on_white(np.asarray(image.convert("LA")), "L")
    if mode in ("RGBA", "RGBa"):
        return _on_white(np.asarray(image.convert("RGBA")), "RGB")
    if mode in ("L", "RGB"):
        return image
    if mode in _COLOUR_MODES:
        return image.convert("RGB")
    return None


def _sixteen_bit_to_gray(image: Image.Image) -> Image.Image:
    """Scale 0..65535 to 0..255 with rounding (value / 257): 65535 → 255, 32896 → 128.

    Mode "I" (32-bit) is read as 16-bit data, which is what PNG and TIFF put in it; values
    outside 0..65535 are clipped.
    """
    values = np.asarray(image).astype(np.int64)
    transparent = image.info.get("transparency")
    values = np.clip(values, 0, 65535)
    gray = ((values * 255 + 32767) // 65535).astype(np.uint8)
    if isinstance(transparent, int):
        gray[np.asarray(image) == transparent] = 255
    return Image.fromarray(gray, "L")


def _palette_to_gray_or_rgb(image: Image.Image) -> Image.Image:
    has_alpha = image.mode == "PA" or "transparency" in image.info or image.palette.mode == "RGBA"
    if has_alpha:
        rgb = np.asarray(_on_white(np.asarray(image.convert("RGBA")), "RGB"))
    else:
        rgb = np.asarray(image.convert("RGB"))
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return Image.fromarray(np.ascontiguousarray(rgb[..., 0]), "L")
    return Image.fromarray(rgb, "RGB")


def _on_white(pixels: np.ndarray, mode: str) -> Image.Image:
    """Composite (H, W, C + 1) uint8 pixels with straight alpha onto white, rounded."""
    alpha = pixels[..., -1:].astype(np.uint32)
    colour = pixels[..., :-1].astype(np.uint32)
    out = (colour * alpha + 255 * (255 - alpha) + 127) // 255
    out = out.astype(np.uint8)
    return Image.fromarray(out[..., 0] if mode == "L" else out, mode)


def _finish(
    image: Image.Image, channels: int | None, size: tuple[int, int] | None, resize: str
) -> np.ndarray:
    """Convert to the channel count, resize, and lay out as (C, H, W)."""
    if channels == 1 and image.mode == "RGB":
        image = image.convert("L")  # before resizing: one channel is cheaper to resample
    if size is not None:
        image = _resized(image, size, resize)
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[None]
        if channels == 3:
            pixels = np.repeat(pixels, 3, axis=0)
        return np.ascontiguousarray(pixels)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _resized(image: Image.Image, size: tuple[int, int], resize: str) -> Image.Image:
    target_h, target_w = size
    width, height = image.size
    if (width, height) == (target_w, target_h):
        return image
    if resize == "stretch":
        return image.resize((target_w, target_h), _RESAMPLE, reducing_gap=_REDUCING_GAP)
    if resize == "crop":
        return image.resize(
            (target_w, target_h),
            _RESAMPLE,
            box=_centre_box(width, height, target_w / target_h),
            reducing_gap=_REDUCING_GAP,
        )
    scale = min(target_w / width, target_h / height)
    inner_w = min(target_w, max(1, round(width * scale)))
    inner_h = min(target_h, max(1, round(height * scale)))
    inner = image.resize((inner_w, inner_h), _RESAMPLE, reducing_gap=_REDUCING_GAP)
    canvas = Image.new(image.mode, (target_w, target_h), 0)
    canvas.paste(inner, ((target_w - inner_w) // 2, (target_h - inner_h) // 2))
    return canvas


def _centre_box(width: int, height: int, aspect: float) -> tuple[float, float, float, float]:
    """The largest centred (left, top, right, bottom) box of aspect ratio `aspect` (W / H)."""
    if width / height > aspect:
        crop_w = height * aspect
        left = (width - crop_w) / 2
        return (left, 0.0, left + crop_w, float(height))
    crop_h = width / aspect
    top = (height - crop_h) / 2
    return (0.0, top, float(width), top + crop_h)


def decode_gray_bytes(
    payload: bytes, where: str, shape: tuple[int, int], dataset: str
) -> np.ndarray:
    """An image file's bytes (e.g. an archive member) as (H, W) uint8 grayscale, for the
    fixed-size datasets; DataError naming `where` when unreadable or not of `shape`."""
    try:
        with Image.open(io.BytesIO(payload)) as image:
            image.load()
            pixels = np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(
            f"{where}: not a readable image ({err}); the {dataset} copy is damaged: get it again"
        ) from None
    if pixels.shape != shape:
        raise DataError(
            f"{where}: image of {pixels.shape[0]}×{pixels.shape[1]} pixels; {dataset} images are "
            f"{shape[0]}×{shape[1]}: this is not {dataset}, or it was resized"
        )
    return pixels


IMAGE_SUFFIXES = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".bmp",
        ".pgm",
        ".ppm",
        ".pbm",
        ".webp",
        ".tif",
        ".tiff",
        ".gif",
    }
)
"""File name endings searched for images in folders (`find_image_files`)."""


def find_image_files(paths: Sequence[Path]) -> list[Path]:
    """The image files among `paths`, with folders searched recursively (sorted).

    Raises:
        DataError: a path that does not exist, or no image file at all.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
        elif path.exists():
            found.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    if not found:
        raise DataError(
            f"no image files in {', '.join(str(p) for p in paths)} (looked for "
            f"{', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return found
