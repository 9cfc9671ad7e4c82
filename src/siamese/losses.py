"""Losses on embeddings. Label convention for pairs: 1 = same class (genuine), 0 = different.

A loss takes embeddings as given (normalising them is the model's job) and returns a
`LossOutput`: the scalar loss and statistics of the step. When nothing is valid (one class in
the batch, a batch of one) the loss is 0 and still connected to the embeddings, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from siamese.distances import Metric, check_metric, paired_distances, pairwise_distances
from siamese.errors import ConfigError
from siamese.mining import MINING_MODES, Mining, mine_triplets


@dataclass
class LossOutput:
    """A loss value and the statistics of the step that produced it.

    `loss` is a scalar tensor with a gradient. `stat_tensors` holds detached 0-d tensors so
    that the training loop can collect them without a host synchronisation; `stats` turns
    them into floats (a sync), for logging.
    """

    loss: torch.Tensor
    stat_tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def stats(self) -> dict[str, float]:
        """The statistics as floats: at least `active_fraction`, `mean_pos_dist`,
        `mean_neg_dist` and `n_valid`."""
        return {name: float(value) for name, value in self.stat_tensors.items()}


def triplet_margin_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 0.2,
    metric: Metric | str = "euclidean",
    soft: bool = False,
) -> torch.Tensor:
    """Per-triplet loss `max(d(a, p) − d(a, n) + margin, 0)`, or `softplus(d(a, p) − d(a, n))`
    when `soft` (the margin is then unused).

    Args:
        anchor, positive, negative: (T, D) embeddings.
    Returns:
        (T,) float32 losses, unreduced.
    """
    d_ap = paired_distances(anchor, positive, metric)
    d_an = paired_distances(anchor, negative, metric)
    return _triplet_terms(d_ap, d_an, margin, soft)


def _triplet_terms(
    d_ap: torch.Tensor, d_an: torch.Tensor, margin: float, soft: bool
) -> torch.Tensor:
    if soft:
        return torch.nn.functional.softplus(d_ap - d_an)
    return torch.relu(d_ap - d_an + margin)


class TripletLoss(torch.nn.Module):
    """Triplet loss with online mining over a labelled batch.

    For each mined triplet (a, p, n) the term is `max(d(a, p) − d(a, n) + margin, 0)` (or
    `softplus(d(a, p) − d(a, n))` when `soft`); the loss is the mean over mined triplets:

    - `mining="semihard"` (Schroff et al. 2015, TensorFlow Addons' semantics): one triplet per
      positive pair, its negative the nearest one farther than the positive (else the farthest).
    - `mining="hard"` (batch-hard, Hermans et al. 2017): one triplet per anchor, its farthest
      positive and nearest negative.
    - `mining="random"`: one random positive and negative per anchor.

    With `ref_embeddings`/`ref_labels`, anchors come from the batch and positives/negatives
    from the reference set (no self-exclusion there).
    """

    def __init__(
        self,
        margin: float = 0.2,
        metric: Metric | str = "euclidean",
        mining: Mining | str = "semihard",
        soft: bool = False,
    ) -> None:
        super().__init__()
        check_metric(metric)
        if mining not in MINING_MODES:
            raise ConfigError(f"unknown mining {mining!r}: choose one of {', '.join(MINING_MODES)}")
        if margin < 0:
            raise ConfigError(f"triplet margin must be >= 0, got {margin}")
        self.margin = float(margin)
        self.metric = metric
        self.mining = mining
        self.soft = soft
        self.generator: torch.Generator | None = None

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_embeddings: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> LossOutput:
        """Args:
            embeddings: (B, D) anchors.
            labels: (B,) int64 class labels.
            ref_embeddings: (R, D) positives/negatives, or None for the batch itself.
            ref_labels: (R,) int64, given exactly when `ref_embeddings` is.
        Returns:
            LossOutput with the mean triplet loss.
        """
        if (ref_embeddings is None) != (ref_labels is None):
            raise ValueError("give both ref_embeddings and ref_labels, or neither")
        dist = pairwise_distances(embeddings, ref_embeddings, self.metric)
        a, p, n = mine_triplets(self.mining, dist, labels, ref_labels, self.generator)
        d_ap, d_an = dist[a, p], dist[a, n]
        terms = _triplet_terms(d_ap, d_an, self.margin, self.soft)
        return reduce_triplets(terms, d_ap, d_an, embeddings)


def reduce_triplets(
    terms: torch.Tensor, d_ap: torch.Tensor, d_an: torch.Tensor, embeddings: torch.Tensor
) -> LossOutput:
    """Mean of `terms` with the step's statistics; 0 with a gradient path when `terms` is empty.

    Args:
        terms: (T,) per-triplet losses.
        d_ap, d_an: (T,) anchor-positive and anchor-negative distances.
        embeddings: (B, D) the batch, to keep the graph connected when T = 0.
    """
    count = torch.tensor(float(terms.numel()), device=terms.device)
    denominator = count.clamp_min(1.0)
    # Sums over an empty tensor are 0, so an empty batch gives 0 (not NaN) and the
    # `embeddings.sum() * 0` term keeps a (zero) gradient path to the model.
    loss = terms.sum() / denominator + embeddings.sum() * 0.0
    stats = {
        "active_fraction": ((terms > 0).sum() / denominator).detach(),
        "mean_pos_dist": (d_ap.sum() / denominator).detach(),
        "mean_neg_dist": (d_an.sum() / denominator).detach(),
        "n_valid": count,
    }
    return LossOutput(loss=loss, stat_tensors=stats)
