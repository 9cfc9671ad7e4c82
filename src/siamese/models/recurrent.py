"""`lstm` / `gru`: a shared recurrent encoder for sequences.

Intended input: float sequences (T, F) — T steps of F features, T may differ between batches —
or images (C, H, W) read row by row as H steps of C·W features (the one-shot tutorials'
"shared LSTM reading a digit row by row"). uint8 images are scaled to [0, 1] by `EmbeddingNet`
before they get here.

The feature is the final hidden state of the last layer (both directions concatenated when
`bidirectional`): (N, hidden_size) or (N, 2·hidden_size).

With the defaults (one layer, hidden_size 128) on 28 features per step — (28, 28) sequences or
(1, 28, 28) digits — the `lstm` has 80,896 parameters (4 · (28·128 + 128·128 + 2·128)) and the
`gru` 60,672 (3 · the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from siamese.errors import ConfigError, DataError
from siamese.models.arguments import (
    checked_dropout,
    checked_flag,
    checked_input_shape,
    checked_positive,
)

RECURRENT_KINDS: tuple[str, ...] = ("lstm", "gru")


class RecurrentEncoder(nn.Module):
    """Args:
    input_shape: one example's shape: (T, F) for sequences, (C, H, W) for images.
    kind: "lstm" or "gru".
    hidden_size: size of the hidden state of each direction.
    layers: stacked recurrent layers.
    bidirectional: also read each sequence backwards.
    dropout: dropout probability between stacked layers (needs layers >= 2).

    `out_features` is `hidden_size`, doubled when `bidirectional`.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        kind: str = "lstm",
        hidden_size: int = 128,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if kind not in RECURRENT_KINDS:
            raise ConfigError(
                f"recurrent encoder kind {kind!r} is unknown: choose one of {', '.join(RECURRENT_KINDS)}"
            )
        self.input_shape = checked_input_shape(kind, input_shape)
        size = checked_positive(kind, "hidden_size", hidden_size)
        depth = checked_positive(kind, "layers", layers)
        rate = checked_dropout(kind, dropout)
        if rate > 0 and depth == 1:
            raise ConfigError(
                f"option dropout={rate} of encoder {kind!r} acts between stacked layers, and "
                "layers=1 has none: set layers >= 2, or dropout 0"
            )
        self.encoder_name = kind
        self.reads_images = len(self.input_shape) == 3
        if self.reads_images:
            c, _, w = self.input_shape
            self.step_features = c * w
        else:
            self.step_features = self.input_shape[1]
        rnn = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = rnn(
            self.step_features,
            size,
            num_layers=depth,
            batch_first=True,
            bidirectional=checked_flag(kind, "bidirectional", bidirectional),
            dropout=rate,
        )
        self.directions = 2 if bidirectional else 1
        self.out_features = size * self.directions
        self.encoder_options: dict[str, Any] = {
            "hidden_size": size,
            "layers": depth,
            "bidirectional": bool(bidirectional),
            "dropout": rate,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, F) float sequences, or (N, C, H, W) images read as (N, H, C·W) →
        (N, out_features) final hidden states of the last layer."""
        n = x.shape[0]
        if self.reads_images:
            if x.dim() != 4 or x.shape[1] * x.shape[3] != self.step_features:
                raise DataError(
                    f"the {self.encoder_name!r} encoder was built for images of shape "
                    f"{self.input_shape} but got a batch of shape {tuple(x.shape)}: build the "
                    "model with the data's input shape"
                )
            x = x.permute(0, 2, 1, 3).reshape(n, x.shape[2], -1)
        elif x.dim() != 3 or x.shape[2] != self.step_features:
            raise DataError(
                f"the {self.encoder_name!r} encoder was built for sequences of "
                f"{self.step_features} features per step but got a batch of shape "
                f"{tuple(x.shape)}: give (N, T, {self.step_features}) inputs"
            )
        if isinstance(self.rnn, nn.LSTM) and torch.is_autocast_enabled("cpu"):
            # oneDNN has no bfloat16 LSTM on CPU: this layer runs in float32 under autocast.
            with torch.autocast("cpu", enabled=False):
                _, state = self.rnn(x.float())
        else:
            _, state = self.rnn(x)
        hidden = state[0] if isinstance(state, tuple) else state  # (layers·dirs, N, H)
        last = hidden[-self.directions :]  # (dirs, N, H): forward then backward
        return last.transpose(0, 1).reshape(n, self.out_features)
