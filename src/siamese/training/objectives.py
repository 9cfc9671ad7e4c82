"""What one training step computes from a batch of indices: embeddings → loss + statistics.

Three kinds of batches (`siamese.data.tuples`):

- `pk`: (indices,) of a P×K batch; the loss mines the batch online (triplet, contrastive or
  pair-classifier over every pair). With several processes the embeddings of every rank are
  gathered first, so mining sees the global batch while the local slice keeps its gradient.
- `pairs`: (i, j, same) offline pairs, same = 1 for genuine, 0 for impostor; contrastive loss
  or the pair classifier's cross-entropy, averaged over the pairs.
- `triplets`: (anchor, positive, negative) offline triplets; the triplet margin loss, averaged.

Every input of a batch goes through the encoder in one forward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from siamese.config import LossConfig
from siamese.distances import paired_distances
from siamese.errors import ConfigError
from siamese.losses import (
    ContrastiveLoss,
    PairClassifierLoss,
    TripletLoss,
    contrastive_loss,
    triplet_margin_loss,
)

Embed = Callable[[torch.Tensor], torch.Tensor]
"""Maps (B,) example indices to (B, D) float32 embeddings with gradient."""

Gather = Callable[[torch.Tensor], torch.Tensor]
"""Concatenates a (B, ...) tensor of every process along dim 0 (identity in one process)."""


@dataclass
class StepOutput:
    """One step's loss and what telemetry needs of it.

    loss: scalar with gradient. stats: detached 0-d tensors `active_fraction`,
    `mean_pos_dist`, `mean_neg_dist`. embeddings: (B, D) detached local embeddings.
    """

    loss: torch.Tensor
    stats: dict[str, torch.Tensor]
    embeddings: torch.Tensor


class Objective(torch.nn.Module):
    """The loss of a run for its batch kind. Holds the loss's own parameters (the pair
    classifier's logistic unit), which train and checkpoint with the model's.

    Args:
        kind: "pk", "pairs" or "triplets".
        loss: for pk batches, a module `(embeddings (B, D), labels (B,)) -> LossOutput`
            (`TripletLoss`, `ContrastiveLoss`, `PairClassifierLoss`); for pairs, a
            `PairClassifierLoss` or None for contrastive; for triplets, None.
        margin, metric, soft: the per-pair / per-triplet loss's settings (pairs, triplets).
    Use `Objective.from_config` to build one from a run config.
    """

    def __init__(
        self,
        kind: str,
        loss: torch.nn.Module | None = None,
        margin: float = 0.2,
        metric: str = "euclidean",
        soft: bool = False,
    ) -> None:
        super().__init__()
        if kind not in ("pk", "pairs", "triplets"):
            raise ConfigError(f"unknown batch kind {kind!r}: choose pk, pairs or triplets")
        if kind == "pk" and loss is None:
            raise ConfigError("pk batches need a loss module that mines the batch")
        self.kind, self.margin, self.metric, self.soft = kind, margin, metric, soft
        self.loss = loss if loss is not None else torch.nn.Identity()
        self.mining_generator: torch.Generator | None = getattr(loss, "generator", None)

    @classmethod
    def from_config(
        cls, kind: str, config: LossConfig, embedding_dim: int, seed: int = 0
    ) -> Objective:
        """The objective of a run: `config.name` on `kind` batches. The random miner draws
        from `mining_generator` (seeded from `seed`, saved in checkpoints)."""
        if kind == "pairs" and config.name == "triplet":
            raise ConfigError("pairs batches train loss.name 'contrastive' or 'pair_classifier'")
        if kind == "triplets" and config.name != "triplet":
            raise ConfigError("triplets batches train loss.name 'triplet'")
        generator = torch.Generator().manual_seed(seed + 7919)
        loss: torch.nn.Module | None = None
        if config.name == "pair_classifier":
            loss = PairClassifierLoss(embedding_dim)
        elif kind == "pk" and config.name == "triplet":
            loss = TripletLoss(config.margin, config.metric, config.mining, config.soft)
            loss.generator = generator
        elif kind == "pk":
            loss = ContrastiveLoss(config.margin, config.metric)
        objective = cls(kind, loss, config.margin, config.metric, config.soft)
        objective.mining_generator = generator
        return objective

    @property
    def margin_for_alarm(self) -> float | None:
        """The margin the collapse alarm compares the loss with (None: no margin)."""
        if isinstance(self.loss, PairClassifierLoss):
            return None
        if isinstance(self.loss, TripletLoss | ContrastiveLoss):
            return None if getattr(self.loss, "soft", False) else self.loss.margin
        return None if self.soft else self.margin

    @property
    def gathers(self) -> bool:
        """Whether the loss reads the global batch (then each rank's gradient is a share of
        the global one and the trainer scales the loss by the world size)."""
        return self.kind == "pk"

    def step(
        self,
        embed: Embed,
        labels: torch.Tensor,
        batch: tuple[torch.Tensor, ...],
        gather: Gather | None = None,
    ) -> StepOutput:
        """The loss of `batch`.

        Args:
            embed: the model applied to examples by index.
            labels: (N,) int64 labels of the whole training set.
            batch: the index tensors of one batch (see the module docstring).
            gather: all-gather across processes (pk batches only), None in one process.
        """
        if self.kind == "pk":
            (index,) = batch
            local = embed(index)
            y = labels[index]
            emb = local if gather is None else gather(local)
            y = y if gather is None else gather(y)
            out = self.loss(emb, y)
            stats = _three_stats(out.stat_tensors, out.loss.device)
            return StepOutput(out.loss, stats, local.detach())
        if self.kind == "pairs":
            i, j, same = batch
            emb = embed(torch.cat([i, j]))
            x1, x2 = emb[: len(i)], emb[len(i) :]
            d = paired_distances(x1.detach(), x2.detach(), self.metric)
            if isinstance(self.loss, PairClassifierLoss):
                terms = self.loss.pair_loss(x1, x2, same)
                wrong = (self.loss.logits(x1.detach(), x2.detach()) > 0) != same.bool()
                active = wrong.float().mean()
            else:
                terms = contrastive_loss(x1, x2, same, self.margin, self.metric)
                active = (terms.detach() > 0).float().mean()
            genuine = same.bool()
            stats = {
                "active_fraction": active,
                "mean_pos_dist": _masked_mean(d, genuine),
                "mean_neg_dist": _masked_mean(d, ~genuine),
            }
            return StepOutput(terms.mean(), stats, emb.detach())
        a, p, n = batch
        emb = embed(torch.cat([a, p, n]))
        ea, ep, en = emb.split(len(a))
        terms = triplet_margin_loss(ea, ep, en, self.margin, self.metric, self.soft)
        d_ap = paired_distances(ea.detach(), ep.detach(), self.metric)
        d_an = paired_distances(ea.detach(), en.detach(), self.metric)
        stats = {
            "active_fraction": (terms.detach() > 0).float().mean(),
            "mean_pos_dist": d_ap.mean(),
            "mean_neg_dist": d_an.mean(),
        }
        return StepOutput(terms.mean(), stats, emb.detach())


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp_min(1)


def _three_stats(stats: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    zero = torch.zeros((), device=device)
    return {
        name: stats.get(name, zero).detach().float()
        for name in ("active_fraction", "mean_pos_dist", "mean_neg_dist")
    }
