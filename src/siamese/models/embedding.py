"""`EmbeddingNet`: an encoder, a linear projection to D, and optional L2 normalisation."""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingNet(nn.Module):
    """Maps inputs to (N, D) float32 embeddings, unit-length when `normalize`.

    Inputs are uint8 images (scaled here to [0, 1] then standardised with `mean`/`std`) or
    float tensors already in that range.

    Args:
        encoder: a module mapping (N, ...) inputs to (N, encoder.out_features) features.
        embedding_dim: D.
        normalize: L2-normalise the embeddings (distances then lie in [0, 2]).
        mean, std: input standardisation, applied after scaling uint8 to [0, 1].
    """

    def __init__(
        self,
        encoder: nn.Module,
        embedding_dim: int = 64,
        normalize: bool = True,
        mean: float = 0.0,
        std: float = 1.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.projection = nn.Linear(int(encoder.out_features), embedding_dim)
        self.normalize = normalize
        self.embedding_dim = embedding_dim
        self.register_buffer("input_mean", torch.tensor(float(mean)), persistent=True)
        self.register_buffer("input_std", torch.tensor(float(std)), persistent=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) inputs → (N, D) float32 embeddings."""
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = (x - self.input_mean) / self.input_std
        z = self.projection(self.encoder(x)).float()
        return nn.functional.normalize(z, dim=1) if self.normalize else z
