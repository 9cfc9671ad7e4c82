"""Margin loss (Wu, Manmatha, Smola and Krähenbühl, "Sampling Matters in Deep Embedding
Learning", ICCV 2017).

A boundary β between genuine and impostor distances, learnt with the model: a positive pair
costs max(0, d − β + margin), a negative pair max(0, β − d + margin), and ν·β is added to
the loss (the paper's penalty on β, which pulls the boundary down).

Reduction: that of pytorch-metric-learning's `MarginLoss(triplets_per_anchor="all")`, so that
the two give the same value. PML forms every triplet (a, p, n) of the batch and adds the
positive term of (a, p) and the negative term of (a, n) once per triplet, then divides by the
number of non-zero terms. Here the triplets are never enumerated: the positive pair (a, p)
appears in as many triplets as a has negatives and the negative pair (a, n) in as many as a
has positives, so the loss is the pair sum weighted by those counts, O(B·R) time and memory:

    loss = (Σ_(a,p) N_a·h(d_ap − β + m) + Σ_(a,n) P_a·h(β − d_an + m)) / T_active + ν·β

with h the hinge, N_a and P_a the anchor's negative and positive counts, and T_active the same
counts summed over the active (non-zero) terms. An anchor without a positive or without a
negative takes no part; with no triplet in the batch the loss is 0 (no ν·β either, as in PML).
ν·β is added only when β is learnt (as in PML: otherwise it is a constant).

Unlike PML's default `LpDistance`, the embeddings are not normalised here: the distance is
`metric` on the embeddings as given (the model normalises them; a normalised model gives
PML's value).
"""

from __future__ import annotations

import torch

from siamese.distances import Metric, check_metric, pairwise_distances
from siamese.errors import ConfigError
from siamese.losses.labelled_batch import LabelledBatch, LabelledBatchLoss
from siamese.losses.ntxent import LabelPairs
from siamese.losses.output import LossOutput, loss_from_distance_weights


class MarginLoss(LabelledBatchLoss):
    """Margin loss over every triplet of a labelled batch, with a learnable boundary β.

    Args:
        margin: the half-width of the band around β (>= 0).
        beta: β's initial value (>= 0).
        learn_beta: β is a `torch.nn.Parameter` named `beta` (trained with the model);
            otherwise a buffer.
        nu: ν, the weight of the penalty ν·β (>= 0; used when β is learnt).
        metric: the distance the loss trains on.

    With `ref_embeddings`/`ref_labels`, anchors come from the batch and positives/negatives
    from the reference set (no self-exclusion there).
    """

    beta: torch.Tensor

    def __init__(
        self,
        margin: float = 0.2,
        beta: float = 1.2,
        learn_beta: bool = True,
        nu: float = 0.0,
        metric: Metric | str = "euclidean",
    ) -> None:
        super().__init__()
        check_metric(metric)
        for name, value in (("margin", margin), ("beta", beta), ("nu", nu)):
            if not value >= 0:
                raise ConfigError(f"margin_loss {name} must be >= 0, got {value}")
        self.margin, self.nu, self.metric = float(margin), float(nu), metric
        self.learn_beta = bool(learn_beta)
        initial = torch.tensor(float(beta))
        if self.learn_beta:
            self.beta = torch.nn.Parameter(initial)
        else:
            self.register_buffer("beta", initial)

    def batch_loss(self, batch: LabelledBatch) -> LossOutput:
        """A LossOutput with the loss; `active_fraction` is the share of the triplets'
        2·T pair terms that are non-zero, `n_valid` the number of triplets T.
        """
        embeddings, labels, ref_embeddings, ref_labels = batch
        dist = pairwise_distances(embeddings, ref_embeddings, self.metric)
        d = dist.detach()
        dtype = d.dtype
        beta = self.beta.detach().to(dtype)
        pairs = LabelPairs(labels, ref_labels, dtype)
        n_pos, n_neg = pairs.n_pos, pairs.n_neg
        # Each pair's multiplicity among the triplets: N_a for (a, p), P_a for (a, n), and 0
        # for an example with itself. (Float 0/1 masks: far faster than bool ones on a CPU.)
        count = torch.addcmul(n_pos, pairs.same, n_neg - n_pos)
        if pairs.within_batch:
            count.diagonal().zero_()
        sign = pairs.same.mul_(2.0).sub_(1.0)  # +1 same class, −1 other classes
        # hinge argument: d − β + m for positives, β − d + m for negatives
        argument = (d - beta).mul_(sign).add_(self.margin)
        active = torch.gt(argument, 0.0, out=torch.empty_like(argument)).mul_(count)
        # (sums, not dots: torch's summation is pairwise, BLAS dots lose ~1e-4 at 4,096²)
        hinge_sum = argument.clamp_min_(0.0).mul_(count).sum()
        del argument, count
        n_active = active.sum()  # active terms, with multiplicity
        denominator = n_active.clamp_min(1.0)
        weights = active.mul_(sign).div_(denominator)  # ∂loss/∂d
        n_triplets = (n_pos * n_neg).sum()
        value = hinge_sum / denominator
        beta_slope = -weights.sum()
        if self.learn_beta:
            has_triplets = (n_triplets > 0).to(dtype)
            value = value + self.nu * beta * has_triplets
            beta_slope = beta_slope + self.nu * has_triplets
        # Σ d over positives and negatives (the diagonal of d is 0 within a batch)
        signed_sum, total = (d * sign).sum(), d.sum()
        del sign
        stats = {
            "active_fraction": n_active / (2.0 * n_triplets).clamp_min(1.0),
            "mean_pos_dist": (total + signed_sum) / 2 / n_pos.sum().clamp_min(1.0),
            "mean_neg_dist": (total - signed_sum) / 2 / n_neg.sum().clamp_min(1.0),
            "n_valid": n_triplets,
            "beta": beta.clone(),
        }
        loss = loss_from_distance_weights(value, weights, dist)
        if self.beta.requires_grad:
            # β's gradient, analytic: a term equal to 0 whose derivative in β is beta_slope.
            beta_param = self.beta.to(d.dtype)
            loss = loss + beta_slope * (beta_param - beta_param.detach())
        return LossOutput(loss=loss, stat_tensors=stats)


__all__ = ["MarginLoss"]
