"""What one training step computes from a batch of indices: embeddings → loss + statistics.

Three kinds of batches (`siamese.data.sampling.offline_tuples`):

- `pk`: (indices,) of a P×K batch; any loss of `siamese.losses.catalog` (the pair losses mine
  the batch online; the class-weight and proxy losses see class indices). With several
  processes the embeddings of every rank are gathered first, so mining sees the global batch
  while the local slice keeps its gradient, and a loss's own parameters get the same gradient
  on every rank (they stay identical).
- `pairs`: (i, j, same) offline pairs, same = 1 for genuine, 0 for impostor; contrastive loss
  or the pair classifier's cross-entropy, averaged over the pairs.
- `triplets`: (anchor, positive, negative) offline triplets; the triplet margin loss, averaged.

Every input of a batch goes through the encoder in one forward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from siamese.config import LossConfig, loss_options
from siamese.distances import paired_distances
from siamese.errors import ConfigError
from siamese.losses import (
    ContrastiveLoss,
    CrossBatchMemory,
    PairClassifierLoss,
    TripletLoss,
    contrastive_loss,
    loss_class,
    triplet_margin_loss,
)
from siamese.losses.catalog import loss_entry

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
    """The loss of a run for its batch kind. Holds the loss's own parameters (class weights,
    proxies, the pair classifier's logistic unit, a learnt β) and state (a cross-batch
    memory), which train and checkpoint with the model's but are never part of the model.

    Args:
        kind: "pk", "pairs" or "triplets".
        loss: for pk batches, a module `(embeddings (B, D), labels (B,)) -> LossOutput`
            (any loss of `siamese.losses.catalog`); for pairs, a `PairClassifierLoss` or None
            for contrastive; for triplets, None.
        margin, metric, soft: the per-pair / per-triplet loss's settings (pairs, triplets).
        classes: (C,) the training labels, sorted, for a loss that takes class indices
            (labels are mapped to their position here); None for the others.
        pos_margin: the offline contrastive loss's genuine margin.
    Use `Objective.from_config` to build one from a run config.
    """

    def __init__(
        self,
        kind: str,
        loss: torch.nn.Module | None = None,
        margin: float = 0.2,
        metric: str = "euclidean",
        soft: bool = False,
        classes: torch.Tensor | None = None,
        pos_margin: float = 0.0,
    ) -> None:
        super().__init__()
        if kind not in ("pk", "pairs", "triplets"):
            raise ConfigError(f"unknown batch kind {kind!r}: choose pk, pairs or triplets")
        if kind == "pk" and loss is None:
            raise ConfigError("pk batches need a loss module that mines the batch")
        self.kind, self.margin, self.metric, self.soft = kind, margin, metric, soft
        self.pos_margin = pos_margin
        self.loss = loss if loss is not None else torch.nn.Identity()
        self.mining_generator: torch.Generator | None = getattr(loss, "generator", None)
        self.maps_classes = classes is not None
        # saved in checkpoints, so a resumed run that would map labels differently is refused
        self.register_buffer(
            "classes",
            classes if classes is not None else torch.zeros(0, dtype=torch.long),
            persistent=classes is not None,
        )

    @classmethod
    def from_config(
        cls,
        kind: str,
        config: LossConfig,
        embedding_dim: int,
        seed: int = 0,
        train_labels: torch.Tensor | None = None,
    ) -> Objective:
        """The objective of a run: the catalog's `config.name` with its options on `kind`
        batches, wrapped in a cross-batch memory when `config.memory` > 0. The random miner
        draws from `mining_generator` (seeded from `seed`, saved in checkpoints).

        Args:
            train_labels: (N,) the training set's labels: a class-weight or proxy loss gets
                one weight per distinct label (required for those losses).
        """
        entry = loss_entry(config.name)
        if kind not in entry.batches:
            raise ConfigError(
                f"batches.kind {kind!r} cannot feed loss.name {config.name!r} "
                f"(it trains on {', '.join(entry.batches)})"
            )
        generator = torch.Generator().manual_seed(seed + 7919)
        options = loss_options(config)
        if kind == "triplets":
            objective = cls(kind, None, config.margin, config.metric, config.soft)
            objective.mining_generator = generator
            return objective
        classes = None
        make = loss_class(config.name)
        if entry.kind == "classes":
            if train_labels is None:
                raise ConfigError(f"loss {config.name!r} needs the training labels")
            classes = torch.unique(train_labels.cpu()).long()
            loss: torch.nn.Module | None = make(len(classes), embedding_dim, **options)
        elif entry.kind == "head":
            loss = make(embedding_dim)
        elif kind == "pairs":
            loss = None  # offline pairs: the per-pair contrastive loss below
        else:
            loss = make(**options)
            if hasattr(loss, "generator"):
                loss.generator = generator
        if loss is not None and config.memory:
            inner = loss
            loss = CrossBatchMemory(inner, embedding_dim, config.memory)
            loss.generator = getattr(inner, "generator", None)
        objective = cls(
            kind,
            loss,
            getattr(config, "margin", None) or 0.0,
            config.metric,
            bool(getattr(config, "soft", False)),
            classes=classes,
            pos_margin=getattr(config, "pos_margin", None) or 0.0,
        )
        objective.mining_generator = generator
        return objective

    @property
    def inner_loss(self) -> torch.nn.Module:
        """The loss itself (inside its cross-batch memory, if it has one)."""
        return getattr(self.loss, "loss", self.loss) if self._has_memory else self.loss

    @property
    def _has_memory(self) -> bool:
        return isinstance(self.loss, CrossBatchMemory)

    @property
    def margin_for_alarm(self) -> float | None:
        """The margin the collapse alarm compares the loss with (None: no margin)."""
        loss = self.inner_loss
        if isinstance(loss, PairClassifierLoss):
            return None
        if self.kind == "pk":
            # a hinge whose mean the margin bounds at collapse; with a memory the loss is a sum
            if isinstance(loss, TripletLoss | ContrastiveLoss) and not (self._has_memory):
                return None if getattr(loss, "soft", False) else float(loss.margin)
            return None
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
            if self.maps_classes:  # the data's labels → class indices of the loss's weights
                y = torch.searchsorted(self.classes, y)
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
                terms = contrastive_loss(x1, x2, same, self.margin, self.metric, self.pos_margin)
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
