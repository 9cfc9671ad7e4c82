"""`seed_cnn`: the small two-convolution network of the classic Siamese tutorials.

Intended input: small images (C, H, W) — digits (1, 28, 28), ORL faces downscaled to
(1, 56, 46). The flattened size of the last feature map is computed from the input shape, so
one model reads one image size.

One layer per entry of `channels`: a `kernel_size` convolution without padding ("valid", as
the tutorials), ReLU, 2×2 max-pooling (floor) and dropout; then flatten, and one linear layer,
ReLU and dropout per entry of `hidden`.

- The default, channels (32, 64) on (1, 28, 28), is the MNIST triplet tutorial's CNN:
  18,816 parameters and a 1,600-d feature (64 × 5 × 5); with its 10-d embedding
  (`EmbeddingNet(embedding_dim=10, ...)`) 34,826.
- The ORL contrastive tutorial: channels (6, 12), hidden (128,), dropout 0.25 after the
  convolutions and dense_dropout 0.1 after the dense layer, on
  (1, 56, 46): 185,168 parameters and a 128-d feature; with its 50-d embedding 191,618.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from siamese.errors import ConfigError, DataError
from siamese.models.arguments import (
    checked_dropout,
    checked_input_shape,
    checked_positive,
    checked_sizes,
)


class SeedCNN(nn.Module):
    """Args:
    input_shape: one image's shape (C, H, W).
    channels: output channels of each convolution layer.
    kernel_size: side of the square convolution kernels.
    hidden: width of each dense layer after flattening; empty: the flattened map is the output.
    dropout: dropout probability after each pooling (and each dense layer).
    dense_dropout: dropout probability after each dense layer; None: `dropout`.

    `out_features` is the last hidden width, or the flattened size of the last feature map.
    """

    encoder_name = "seed_cnn"

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
        dense_dropout: float | None = None,
    ) -> None:
        super().__init__()
        self.input_shape = checked_input_shape("seed_cnn", input_shape)
        widths = checked_sizes("seed_cnn", "channels", channels, allow_empty=False)
        kernel = checked_positive("seed_cnn", "kernel_size", kernel_size)
        dense = checked_sizes("seed_cnn", "hidden", hidden)
        rate = checked_dropout("seed_cnn", dropout)
        dense_rate = rate if dense_dropout is None else checked_dropout("seed_cnn", dense_dropout)
        c, h, w = self.input_shape
        conv: list[nn.Module] = []
        for i, width in enumerate(widths):
            # Dropout(0) is kept so parameter names do not depend on the dropout rate.
            conv += [nn.Conv2d(c, width, kernel), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            conv.append(nn.Dropout(rate))
            c, h, w = width, (h - kernel + 1) // 2, (w - kernel + 1) // 2
            if h < 1 or w < 1:
                raise ConfigError(
                    f"encoder 'seed_cnn' with channels={list(widths)} and kernel_size={kernel} "
                    f"shrinks {self.input_shape[1]}×{self.input_shape[2]} images to nothing at "
                    f"layer {i + 1}: use fewer channels entries, a smaller kernel_size, or larger images"
                )
        self.features = nn.Sequential(*conv)
        self.feature_map_shape = (c, h, w)
        layers: list[nn.Module] = [nn.Flatten()]
        features = c * h * w
        for width in dense:
            layers += [nn.Linear(features, width), nn.ReLU(inplace=True), nn.Dropout(dense_rate)]
            features = width
        self.head = nn.Sequential(*layers)
        self.out_features = features
        self.encoder_options: dict[str, Any] = {
            "channels": list(widths),
            "kernel_size": kernel,
            "hidden": list(dense),
            "dropout": rate,
            "dense_dropout": dense_rate,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float images → (N, out_features) features."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise DataError(
                f"the 'seed_cnn' encoder was built for images of shape {self.input_shape} but got "
                f"a batch of shape {tuple(x.shape)}: build the model with the data's input shape "
                f"(its flattened size, {math.prod(self.feature_map_shape)}, depends on it)"
            )
        return self.head(self.features(x))
