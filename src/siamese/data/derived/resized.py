"""Resizing whole datasets of uint8 images: the `image_size` option of the named sources,
and fitting out-of-distribution or cross-dataset examples to a model's input size."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from siamese.data.labeled import ImageSource, LabeledData, in_memory
from siamese.errors import ConfigError

_CHUNK = 4096  # images per interpolation call: bounds the float32 working copy


def image_size_option(source: str, value: object) -> tuple[int, int]:
    """Check an `image_size` option: (H, W), or one int for a square.

    Raises:
        ConfigError: not one or two positive integers.
    """
    sizes: Sequence[object] = (value, value) if isinstance(value, int) else value  # type: ignore[assignment]
    if (
        isinstance(value, bool)
        or not isinstance(sizes, (list, tuple))
        or len(sizes) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)
    ):
        raise ConfigError(
            f"{source}: image_size must be [height, width] or one positive integer, got {value!r}"
        )
    return int(sizes[0]), int(sizes[1])  # type: ignore[arg-type]


def resize_images(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with an antialiasing filter when shrinking (like PIL's), rounded back.

    Args:
        x: (N, C, H, W) uint8 images.
        size: output (height, width).
    Returns:
        (N, C, *size) uint8; `x` itself when it already has that size.
    """
    if x.ndim != 4:
        raise ConfigError(f"image_size needs images (N, C, H, W), got shape {tuple(x.shape)}")
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    out = torch.empty((x.shape[0], x.shape[1], *size), dtype=x.dtype)
    for start in range(0, x.shape[0], _CHUNK):
        chunk = x[start : start + _CHUNK].to(torch.float32)
        resized = torch.nn.functional.interpolate(
            chunk, size=size, mode="bilinear", align_corners=False, antialias=True
        )
        if x.dtype == torch.uint8:
            resized = resized.round_().clamp_(0, 255)
        out[start : start + _CHUNK] = resized.to(x.dtype)
    return out


def resized(data: LabeledData, size: tuple[int, int]) -> LabeledData:
    """`data` with every image resized to `size` (labels and metadata unchanged)."""
    return dataclasses.replace(data, x=resize_images(in_memory(data.x, "image_size"), size))


def fitted_to(data: LabeledData, shape: Sequence[int], what: str) -> tuple[LabeledData, str]:
    """Fit `data`'s images to a model's input `shape` (C, H, W), as the model's own
    preprocessing would: colour to grey (ITU-R 601 luma, as Pillow's "L") or grey to three
    equal channels, then resized (antialiased bilinear) when H and W differ.

    Returns:
        the data, and a note for reports ("" when nothing changed), e.g.
        "converted from 3 channels to 1, resized from 105×105 to 28×28".
    Raises:
        ConfigError: not images, or channel counts that cannot be converted (other than 1/3).
    """
    have, want = tuple(data.x.shape[1:]), tuple(shape)
    if have == want:
        return data, ""
    if len(have) != 3 or len(want) != 3 or {have[0], want[0]} - {1, 3}:
        raise ConfigError(
            f"{what}: examples of shape {have}, but the model takes {want}; only images (1 or 3 "
            "channels) can be converted and resized to fit"
        )
    notes = []
    if have[0] != want[0]:
        plural = "s" if have[0] > 1 else ""
        notes.append(f"converted from {have[0]} channel{plural} to {want[0]}")
    if have[1:] != want[1:]:
        notes.append(f"resized from {have[1]}×{have[2]} to {want[1]}×{want[2]}")
    if isinstance(data.x, ImageSource):  # converted batch by batch, as they are decoded
        return dataclasses.replace(data, x=data.x.fitted(want)), ", ".join(notes)
    if have[0] != want[0]:
        data = with_channels(data, int(want[0]))
    if have[1:] != want[1:]:
        data = resized(data, (int(want[1]), int(want[2])))
    return data, ", ".join(notes)


_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, Pillow's RGB → L


def with_channels(data: LabeledData, channels: int) -> LabeledData:
    """`data` with images of 1 or 3 channels converted to `channels` (1 or 3): RGB → grey by
    ITU-R 601 luma, rounded like Pillow's "L"; grey → RGB by repeating the channel."""
    if data.x.shape[1] == channels:
        return data
    return dataclasses.replace(data, x=convert_channels(data.x, channels))


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, 1 or 3, H, W) images as (N, `channels`, H, W): RGB → grey by ITU-R 601 luma, rounded
    like Pillow's "L"; grey → RGB by repeating the channel; `x` itself when it has them."""
    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    weights = torch.tensor(_LUMA, dtype=torch.float64).view(1, 3, 1, 1)
    grey = (x.double() * weights).sum(dim=1, keepdim=True)
    return grey.round().clamp(0, 255).to(x.dtype) if x.dtype == torch.uint8 else grey.to(x.dtype)
