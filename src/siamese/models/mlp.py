"""`mlp`: a multilayer perceptron on flattened inputs, for feature vectors and small images.

Intended input: any per-example shape, flattened to (F,) features — (F,) vectors, or small
images such as MNIST's (1, 28, 28) → F = 784.

Each entry of `hidden` adds a linear layer, the activation and dropout. The default,
`hidden=(64,)` with ReLU, has 50,240 parameters on 784 inputs (784·64 + 64).

The Keras MNIST triplet tutorial's network, Dense(64, relu) → Dense(64, sigmoid) on 784 inputs,
is this encoder with `hidden=(64,)` inside `EmbeddingNet(embedding_dim=64, normalize=False,
output_activation="sigmoid")`: 784·64 + 64 + 64·64 + 64 = 54,400 parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from siamese.errors import DataError
from siamese.models.arguments import (
    checked_choice,
    checked_dropout,
    checked_input_shape,
    checked_sizes,
)

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


class MLP(nn.Module):
    """Flattens (N, ...) inputs to (N, F) and applies the hidden layers.

    Args:
        input_shape: one example's shape (without the batch dim); F is its product.
        hidden: width of each hidden layer; empty passes the flattened input through.
        activation: after each hidden layer: "relu", "sigmoid", "tanh" or "gelu".
        dropout: dropout probability after each hidden layer's activation.

    `out_features` is the last hidden width, or F when `hidden` is empty.
    """

    encoder_name = "mlp"

    def __init__(
        self,
        input_shape: Sequence[int],
        hidden: Sequence[int] = (64,),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_shape = checked_input_shape("mlp", input_shape)
        widths = checked_sizes("mlp", "hidden", hidden)
        checked_choice("mlp", "activation", activation, tuple(ACTIVATIONS))
        rate = checked_dropout("mlp", dropout)
        self.in_features = math.prod(self.input_shape)
        layers: list[nn.Module] = [nn.Flatten()]
        features = self.in_features
        for width in widths:
            # Dropout(0) is kept so parameter names do not depend on the dropout rate.
            layers += [nn.Linear(features, width), ACTIVATIONS[activation](), nn.Dropout(rate)]
            features = width
        self.layers = nn.Sequential(*layers)
        self.out_features = features
        self.encoder_options: dict[str, Any] = {
            "hidden": list(widths),
            "activation": activation,
            "dropout": rate,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) float inputs with F values per example → (N, out_features) features."""
        if x.shape[1:].numel() != self.in_features:
            raise DataError(
                f"the 'mlp' encoder was built for examples of shape {self.input_shape} "
                f"({self.in_features} values) but got a batch of shape {tuple(x.shape)}: "
                "build the model with the data's input shape"
            )
        return self.layers(x)
