"""Generalised lifted structure loss (Oh Song, Xiang, Jegelka and Savarese, Deep Metric Learning
via Lifted Structured Feature Embedding, CVPR 2016; generalised per anchor by Hermans, Beyer
and Leibe, In Defense of the Triplet Loss for Person Re-Identification, 2017, §2).

On the distances d of an anchor a to its positives P and negatives N,

    L_a = [ log Σ_{p∈P} exp(d_ap − pos_margin) + log Σ_{n∈N} exp(margin − d_an) ]_+,

and the loss is the mean of L_a over the B anchors of the batch: pytorch-metric-learning's
`GeneralizedLiftedStructureLoss(neg_margin=margin, pos_margin)` with its mean reduction. As
there, a side without pairs contributes 0 (not the −∞ of an empty log-sum): an anchor without
positives still pushes its negatives beyond the margin, one without negatives still pulls its
positives in; an anchor with neither costs 0. (PML measures Euclidean distance between
L2-normalised embeddings by default; here the distance is `metric` on the embeddings as given.)

Value and derivatives are computed without autograd (softmax weights within each log-sum-exp,
gated by the hinge); only the (B, R) distance matrix is in the graph.
"""

from __future__ import annotations

import torch

from siamese.distances import Metric, check_metric, pairwise_distances
from siamese.errors import ConfigError
from siamese.losses.labelled_batch import LabelledBatch, LabelledBatchLoss
from siamese.losses.multi_similarity import exp_rows, masked_extreme, pair_masks, pair_sums
from siamese.losses.output import LossOutput, loss_from_distance_weights


class LiftedStructureLoss(LabelledBatchLoss):
    """Generalised lifted structure loss on `metric` distances (see the module docstring).

    Args:
        margin: negatives closer than this cost (>= 0).
        pos_margin: positives farther than this cost (>= 0).
        metric: "euclidean", "sqeuclidean" or "cosine" (1 − cos).

    With `ref_embeddings`/`ref_labels`, anchors come from the batch and positives/negatives
    from the reference set (no self-exclusion there).

    Statistics: `n_valid` the anchors with at least one pair, `active_fraction` the share of
    them with L_a > 0, `mean_pos_dist`/`mean_neg_dist` the mean distance over the batch's
    positive/negative pairs.
    """

    def __init__(
        self, margin: float = 1.0, pos_margin: float = 0.0, metric: Metric | str = "euclidean"
    ) -> None:
        super().__init__()
        check_metric(metric)
        if not margin >= 0:  # also rejects NaN
            raise ConfigError(f"lifted_structure margin must be >= 0, got {margin!r}")
        if not pos_margin >= 0:
            raise ConfigError(f"lifted_structure pos_margin must be >= 0, got {pos_margin!r}")
        self.margin, self.pos_margin, self.metric = float(margin), float(pos_margin), metric

    def batch_loss(self, batch: LabelledBatch) -> LossOutput:
        """A LossOutput with the mean over anchors of L_a."""
        embeddings, labels, ref_embeddings, ref_labels = batch
        dist = pairwise_distances(embeddings, ref_embeddings, self.metric)
        d = dist.detach()
        positive, negative = pair_masks(labels, ref_labels)
        # Positives: z = d − pos_margin, largest at the farthest positive; negatives:
        # z = margin − d, largest at the nearest negative. Each row shifts by its largest z.
        e_pos = torch.where(positive, d, 0.0)  # d >= 0: a row's max is its farthest positive
        pos_sum = e_pos.sum()  # for the statistics
        far_pos = e_pos.amax(dim=1) if d.shape[1] else d.new_zeros(d.shape[0])
        e_pos.sub_(far_pos[:, None])  # z − shift
        lse_pos, scale_pos, has_pos = exp_rows(e_pos, far_pos - self.pos_margin, positive, False)
        e_neg = torch.empty_like(d)
        near_neg = masked_extreme(d, negative, largest=False, buffer=e_neg)
        near_neg = near_neg.nan_to_num_(posinf=0.0)  # +∞ without negatives: any shift
        torch.sub(near_neg[:, None], e_neg, out=e_neg)  # z − shift (−∞ off the negatives)
        lse_neg, scale_neg, has_neg = exp_rows(e_neg, self.margin - near_neg, negative, False)
        n_rows = max(d.shape[0], 1)
        total = lse_pos + lse_neg
        value = total.clamp_min(0.0).sum() / n_rows
        active = total > 0  # never for an anchor without pairs (total 0)
        row = active.to(d.dtype) / n_rows
        weights = e_pos.mul_((row * scale_pos)[:, None])
        weights.sub_(e_neg.mul_((row * scale_neg)[:, None]))
        del e_neg
        n_valid = (has_pos | has_neg).sum().to(d.dtype)
        n_pos = torch.count_nonzero(positive).to(d.dtype)
        mean_pos, mean_neg = pair_sums(d, pos_sum, n_pos, ref_labels is None)
        stats = {
            "active_fraction": active.sum().to(d.dtype) / n_valid.clamp_min(1.0),
            "mean_pos_dist": mean_pos,
            "mean_neg_dist": mean_neg,
            "n_valid": n_valid,
        }
        return LossOutput(loss_from_distance_weights(value, weights, dist), stat_tensors=stats)


__all__ = ["LiftedStructureLoss"]
