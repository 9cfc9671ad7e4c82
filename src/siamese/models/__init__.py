"""Encoders and the embedding head."""

from __future__ import annotations

from torch import nn

from siamese.errors import ConfigError
from siamese.models.convnet import ConvNet
from siamese.models.embedding import EmbeddingNet

ENCODERS: tuple[str, ...] = ("convnet",)


def build_encoder(name: str, input_shape: tuple[int, ...], **options: int) -> nn.Module:
    """The encoder called `name` for inputs of shape `input_shape` (without the batch dim)."""
    if name == "convnet":
        return ConvNet(in_channels=input_shape[0], **options)
    raise ConfigError(f"unknown encoder {name!r}: choose one of {', '.join(ENCODERS)}")


__all__ = ["ENCODERS", "ConvNet", "EmbeddingNet", "build_encoder"]
