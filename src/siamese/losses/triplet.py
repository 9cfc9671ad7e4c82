"""Triplet losses: offline triplets, and online mining over a labelled batch."""

from __future__ import annotations

import torch

from siamese.distances import Metric, check_metric, paired_distances, pairwise_distances
from siamese.errors import ConfigError
from siamese.losses.labelled_batch import LabelledBatch, LabelledBatchLoss
from siamese.losses.output import LossOutput, loss_from_distance_weights
from siamese.mining import (
    DIRECT_SEARCH_MAX_POSITIVES,
    MINING_MODES,
    Mining,
    mine_triplets,
    padded_columns,
    positive_negative_masks,
    row_blocks,
)

TRIPLET_MINING: tuple[str, ...] = ("all", *MINING_MODES)


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

    Example:
        >>> import torch
        >>> from siamese import triplet_margin_loss
        >>> anchor, positive = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.5]])
        >>> negative = torch.tensor([[0.6, 0.0]])
        >>> triplet_margin_loss(anchor, positive, negative, margin=0.2)  # 0.5 − 0.6 + 0.2
        tensor([0.1000])
        >>> round(triplet_margin_loss(anchor, positive, negative, soft=True).item(), 4)
        0.6444
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


class TripletLoss(LabelledBatchLoss):
    """Triplet loss with online mining over a labelled batch.

    For each triplet (a, p, n) the term is `max(d(a, p) − d(a, n) + margin, 0)` (or
    `softplus(d(a, p) − d(a, n))` when `soft`). A positive p is another example of a's class,
    a negative n an example of another class.

    - `mining="all"` (batch-all): every valid triplet; the loss is the mean of the non-zero
      terms (0 when none). Computed without enumerating the B³ triplets: per anchor, the
      negative distances are sorted once and each positive pair's active negatives are
      counted (see `batch_all_triplet_loss`) — O(B² log B) time, O(B²) memory, at most.

    The other modes mine index tensors (`siamese.mining`) and average over mined triplets:

    - `mining="semihard"` (Schroff et al. 2015, TensorFlow Addons' semantics): one triplet per
      positive pair, its negative the nearest one farther than the positive (else the farthest).
    - `mining="hard"` (batch-hard, Hermans et al. 2017): one triplet per anchor, its farthest
      positive and nearest negative.
    - `mining="random"`: one random positive and negative per anchor.

    With `ref_embeddings`/`ref_labels`, anchors come from the batch and positives/negatives
    from the reference set (no self-exclusion there).

    Example:
        >>> import torch
        >>> from siamese import TripletLoss
        >>> _ = torch.manual_seed(0)
        >>> embeddings = torch.nn.functional.normalize(torch.randn(8, 4), dim=1)
        >>> labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
        >>> out = TripletLoss(margin=0.2, mining="hard")(embeddings, labels)
        >>> round(out.loss.item(), 4), sorted(out.stats)
        (0.9266, ['active_fraction', 'mean_neg_dist', 'mean_pos_dist', 'n_valid'])
        >>> out = TripletLoss(mining="all")(embeddings, labels)  # 8 anchors × 1 positive × 6
        >>> round(out.loss.item(), 4), out.stats["n_valid"]
        (0.5748, 48.0)
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
        if mining not in TRIPLET_MINING:
            raise ConfigError(
                f"unknown mining {mining!r}: choose one of {', '.join(TRIPLET_MINING)}"
            )
        if margin < 0:
            raise ConfigError(f"triplet margin must be >= 0, got {margin}")
        self.margin = float(margin)
        self.metric = metric
        self.mining = mining
        self.soft = soft
        self.generator: torch.Generator | None = None

    def batch_loss(self, batch: LabelledBatch) -> LossOutput:
        """A LossOutput with the mean triplet loss."""
        embeddings, labels, ref_embeddings, ref_labels = batch
        dist = pairwise_distances(embeddings, ref_embeddings, self.metric)
        if self.mining == "all":
            return batch_all_triplet_loss(dist, labels, ref_labels, self.margin, self.soft)
        a, p, n = mine_triplets(self.mining, dist, labels, ref_labels, self.generator)
        return reduce_triplets(dist, a, p, n, self.margin, self.soft)


def reduce_triplets(
    dist: torch.Tensor,
    a: torch.Tensor,
    p: torch.Tensor,
    n: torch.Tensor,
    margin: float,
    soft: bool,
) -> LossOutput:
    """Mean triplet loss over the triplets (a, p, n) of the distance matrix `dist` (B, R),
    with the step's statistics; 0 (with a gradient path) when there are no triplets."""
    d = dist.detach()
    d_ap, d_an = d[a, p], d[a, n]
    terms = _triplet_terms(d_ap, d_an, margin, soft)
    slope = torch.sigmoid(d_ap - d_an) if soft else (terms > 0).to(d.dtype)
    count = torch.tensor(float(terms.numel()), dtype=d.dtype, device=d.device)
    denominator = count.clamp_min(1.0)
    weights = torch.zeros_like(d)
    weights.index_put_((a, p), slope / denominator, accumulate=True)
    weights.index_put_((a, n), -slope / denominator, accumulate=True)
    stats = {
        "active_fraction": (terms > 0).sum() / denominator,
        "mean_pos_dist": d_ap.sum() / denominator,
        "mean_neg_dist": d_an.sum() / denominator,
        "n_valid": count,
    }
    loss = loss_from_distance_weights(terms.sum() / denominator, weights, dist)
    return LossOutput(loss=loss, stat_tensors=stats)


def batch_all_triplet_loss(
    dist: torch.Tensor,
    labels: torch.Tensor,
    ref_labels: torch.Tensor | None,
    margin: float,
    soft: bool,
) -> LossOutput:
    """Batch-all triplet loss from a distance matrix, without enumerating the B³ triplets.

    Hinge: the mean of `d(a, p) − d(a, n) + margin` over the active triplets (where it is
    > 0). Each term is linear in two distances, so the loss equals
    `(Σ c_ap·d(a, p) − Σ c_an·d(a, n)) / T + margin`, where c_ap counts the active negatives
    of the pair (a, p), c_an the active positives of (a, n) and T the active triplets. The
    counts are piecewise constant (no gradient): with M positives per anchor they come from
    (B, M, R) comparisons in bounded blocks when M is small (P×K batches), else from one sort
    per anchor and `searchsorted`, O(B·R log R).
    Soft: the mean of `softplus(d(a, p) − d(a, n))` over all valid triplets, in bounded blocks
    of (B, M, R); the gradient weights are the sigmoids.

    Args:
        dist: (B, R) distances with gradient.
        labels: (B,) anchor labels; ref_labels: (R,) or None (then R = B, no self-pairs).
        margin: hinge margin (unused when `soft`).
        soft: softplus instead of the hinge.
    """
    positive, negative = positive_negative_masks(labels, ref_labels)
    d = dist.detach()
    pos_cols, present = padded_columns(positive)
    d_ap = d.gather(1, pos_cols)  # (B, M)
    pair_weight = torch.zeros_like(d_ap)  # per (anchor, positive slot)
    weights = torch.zeros_like(d)  # −(active positives) at negatives; the pairs' counts added below
    value = torch.zeros((), dtype=d.dtype, device=d.device)
    width = pos_cols.shape[1]
    with torch.no_grad():
        if soft or width <= DIRECT_SEARCH_MAX_POSITIVES:
            for rows in row_blocks(d.shape[0], max(1, width) * d.shape[1]):
                diff = d_ap[rows, :, None] - d[rows, None, :]  # (b, M, R): d(a, p) − d(a, n)
                valid = present[rows, :, None] & negative[rows, None, :]
                if soft:
                    value += torch.nn.functional.softplus(diff).masked_fill(~valid, 0.0).sum()
                    slope = torch.sigmoid(diff).masked_fill(~valid, 0.0)
                else:
                    slope = (valid & (diff + margin > 0)).to(d.dtype)
                pair_weight[rows] = slope.sum(dim=2)
                weights[rows] = slope.sum(dim=1).neg_()
        else:
            pos_sorted = d_ap.masked_fill(~present, float("inf")).sort(dim=1).values
            n_pos = present.sum(dim=1, keepdim=True)
            for rows in row_blocks(d.shape[0], d.shape[1]):
                db = d[rows]
                # Active negatives of (a, p): those with d(a, n) < d(a, p) + margin.
                neg_sorted = db.masked_fill(~negative[rows], float("inf")).sort(dim=1).values
                below = torch.searchsorted(neg_sorted, d_ap[rows] + margin, out_int32=True)
                pair_weight[rows] = below.masked_fill(~present[rows], 0).to(d.dtype)
                del neg_sorted
                # Active positives of (a, n): those with d(a, p) > d(a, n) − margin.
                at_most = torch.searchsorted(
                    pos_sorted[rows], db - margin, right=True, out_int32=True
                )
                active_pos = (at_most - n_pos[rows]).masked_fill_(~negative[rows], 0)
                weights[rows] = active_pos.to(d.dtype)
    weights.scatter_add_(1, pos_cols, pair_weight * present)
    n_valid = (positive.sum(dim=1) * negative.sum(dim=1)).sum().to(d.dtype)
    n_active = n_valid if soft else (pair_weight * present).sum()
    denominator = n_active.clamp_min(1.0)
    weights.div_(denominator)
    if soft:
        value = value / denominator
    else:
        # Σ over active triplets of d(a, p) − d(a, n) + margin, from the counts.
        value = torch.dot(weights.flatten(), d.flatten()) + margin * n_active / denominator
    pos_sum, neg_sum = masked_sums(d, positive), masked_sums(d, negative)
    stats = {
        "active_fraction": n_active / n_valid.clamp_min(1.0),
        "mean_pos_dist": pos_sum / positive.sum().clamp_min(1),
        "mean_neg_dist": neg_sum / negative.sum().clamp_min(1),
        "n_valid": n_valid,
    }
    return LossOutput(loss=loss_from_distance_weights(value, weights, dist), stat_tensors=stats)


def masked_sums(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ values[mask] for (B, R) tensors, a block of rows at a time (no (B, R) temporary)."""
    total = torch.zeros((), dtype=values.dtype, device=values.device)
    for rows in row_blocks(values.shape[0], values.shape[1]):
        total += torch.where(mask[rows], values[rows], 0.0).sum()
    return total
