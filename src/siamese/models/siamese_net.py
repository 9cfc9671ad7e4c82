"""`SiameseNet`: one shared `EmbeddingNet` and a pair head that scores "same class"."""

from __future__ import annotations

import torch
from torch import nn

from siamese.losses.pair_classifier import PairClassifierLoss
from siamese.models.embedding import EmbeddingNet


class SiameseNet(nn.Module):
    """Both inputs go through the same `embedding_net`; the head of a `PairClassifierLoss`
    (a logistic unit on |f(a) − f(b)|, Koch et al. 2015) turns the pair into a logit of
    "same class" (1 = genuine, 0 = impostor). The score is symmetric in its two inputs.

    Args:
        embedding_net: the shared encoder + projection, (N, ...) → (N, D).
        head: the pair classifier whose `logits` score pairs; a new one for D when None.
            Its parameters belong to this module, so one optimiser trains both.

    Example:
        >>> import torch
        >>> from siamese import EmbeddingNet, SiameseNet, build_encoder
        >>> _ = torch.manual_seed(0)
        >>> net = SiameseNet(EmbeddingNet(build_encoder("mlp", (1, 8, 8)), embedding_dim=4)).eval()
        >>> a, b = torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8)
        >>> logits = net(a, b)
        >>> tuple(logits.shape), torch.allclose(logits, net(b, a))  # symmetric in its inputs
        ((3,), True)
        >>> p = net.probability(a, b)
        >>> bool(((p > 0) & (p < 1)).all())
        True
    """

    def __init__(self, embedding_net: EmbeddingNet, head: PairClassifierLoss | None = None) -> None:
        super().__init__()
        self.embedding_net = embedding_net
        self.head = head if head is not None else PairClassifierLoss(embedding_net.embedding_dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) inputs → (N, D) float32 embeddings."""
        return self.embedding_net(x)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """(N, ...) and (N, ...) inputs → (N,) logits of "same class" (1 = genuine)."""
        if x1.shape[1:] == x2.shape[1:] and x1.dtype == x2.dtype:
            # One pass over both halves: batch norm sees the whole batch of pairs.
            z = self.embedding_net(torch.cat([x1, x2]))
            z1, z2 = z[: x1.shape[0]], z[x1.shape[0] :]
        else:
            z1, z2 = self.embedding_net(x1), self.embedding_net(x2)
        return self.head.logits(z1, z2)

    def probability(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """(N, ...) and (N, ...) inputs → (N,) probabilities in (0, 1) that each pair is
        genuine (same class)."""
        return torch.sigmoid(self(x1, x2))
