"""Circle loss (Sun, Cheng, Zhang, Zhang, Zheng, Wang and Wei, Circle Loss: A Unified Perspective
of Pair Similarity Optimization, CVPR 2020), for class labels.

On the cosine similarities s of an anchor a to its positives P and negatives N, with one
relaxation margin m and scale γ: optima O_p = 1 + m, O_n = −m, decision margins Δ_p = 1 − m,
Δ_n = m, and the self-paced weights α_p = [O_p − s_p]_+, α_n = [s_n − O_n]_+,

    L_a = softplus( log Σ_{p∈P} exp(−γ α_p (s_p − Δ_p)) + log Σ_{n∈N} exp(γ α_n (s_n − Δ_n)) ).

The α are weights, not functions to differentiate: as in the paper's code and
pytorch-metric-learning's `CircleLoss`, the gradient treats them as constants. The loss is the
mean of L_a over the anchors that have both a positive and a negative (0 when none has).

Value and derivatives are computed without autograd (softmax weights within each log-sum-exp,
times the sigmoid of the soft-plus); only the (B, R) similarity matrix is in the graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from siamese.errors import ConfigError
from siamese.losses.labelled_batch import LabelledBatch, LabelledBatchLoss
from siamese.losses.multi_similarity import (
    exp_rows,
    masked_extreme,
    pair_sums,
    similarity_pairs,
)
from siamese.losses.output import LossOutput, loss_from_distance_weights


def _z_pos(s: torch.Tensor, m: float, gamma: float) -> torch.Tensor:
    """The positives' logits γ·((min(s, 1 + m) − 1)² − m²), for any shape (a new tensor)."""
    return torch.clamp(s, max=1.0 + m).sub_(1.0).square_().sub_(m * m).mul_(gamma)


def _z_neg(s: torch.Tensor, m: float, gamma: float) -> torch.Tensor:
    """The negatives' logits γ·(max(s, −m)² − m²), for any shape (a new tensor)."""
    return torch.clamp(s, min=-m).square_().sub_(m * m).mul_(gamma)


class CircleLoss(LabelledBatchLoss):
    """Circle loss on cosine similarities (see the module docstring).

    Args:
        margin: the relaxation margin m >= 0.
        gamma: the scale γ > 0.

    With `ref_embeddings`/`ref_labels`, anchors come from the batch and positives/negatives
    from the reference set (no self-exclusion there). Embeddings are L2-normalised here.

    Statistics: `n_valid` the anchors with a positive and a negative, `active_fraction` the
    share of them whose two log-sum-exps add up to more than 0 (L_a > log 2: the anchor is on
    the wrong side of the circle's decision boundary, softly), `mean_pos_dist`/`mean_neg_dist`
    the mean cosine distance 1 − s over the batch's positive/negative pairs.
    """

    def __init__(self, margin: float = 0.4, gamma: float = 80.0) -> None:
        super().__init__()
        if not margin >= 0:  # also rejects NaN
            raise ConfigError(f"circle margin must be >= 0, got {margin!r}")
        if not gamma > 0:
            raise ConfigError(f"circle gamma must be > 0, got {gamma!r}")
        self.margin, self.gamma = float(margin), float(gamma)

    def batch_loss(self, batch: LabelledBatch) -> LossOutput:
        """A LossOutput with the mean of L_a over the valid anchors."""
        sim, s, positive, negative, buffer, pos_sum, least_pos, most_neg = similarity_pairs(batch)
        same_set = batch.ref_labels is None
        least_neg = masked_extreme(s, negative, largest=False, buffer=buffer)
        has_pos, has_neg = least_pos < float("inf"), most_neg > float("-inf")
        m, gamma = self.margin, self.gamma
        # Positives: z = −γ·[1 + m − s]_+·(s − (1 − m)) = γ·((min(s, 1 + m) − 1)² − m²),
        # decreasing in s up to s = 1 (and |s| <= 1): largest at the least similar positive.
        # Negatives: z = γ·[s + m]_+·(s − m) = γ·(max(s, −m)² − m²), largest at the most or
        # the least similar negative. The shift of each row is its largest z.
        shift_pos = torch.where(has_pos, _z_pos(least_pos, m, gamma), 0.0)
        shift_neg = torch.maximum(_z_neg(most_neg, m, gamma), _z_neg(least_neg, m, gamma))
        shift_neg = torch.where(has_neg, shift_neg, 0.0)
        e_pos = _z_pos(s, m, gamma).sub_(shift_pos[:, None])
        lse_pos, scale_pos, _ = exp_rows(e_pos, shift_pos, positive, False, has_pos)
        e_neg = _z_neg(s, m, gamma).sub_(shift_neg[:, None])
        lse_neg, scale_neg, _ = exp_rows(e_neg, shift_neg, negative, False, has_neg)
        valid = has_pos & has_neg
        n_valid = valid.sum().to(s.dtype)
        denominator = n_valid.clamp_min(1.0)
        total = lse_pos + lse_neg
        value = torch.where(valid, F.softplus(total), 0.0).sum() / denominator
        # ∂L/∂s = sigmoid(total)/N · softmax · ∂z/∂s, on valid anchors only, where with the
        # weights held constant ∂z/∂s = −γ·α_p = −γ·[1 + m − s]_+ or γ·α_n = γ·[s + m]_+.
        row = torch.where(valid, torch.sigmoid(total), 0.0).div_(denominator).mul_(gamma)
        alpha = torch.neg(s, out=buffer).add_(1.0 + m).clamp_min_(0.0)  # α_p
        weights = e_pos.mul_(alpha).mul_((row * scale_pos)[:, None]).neg_()
        alpha = torch.add(s, m, out=buffer).clamp_min_(0.0)  # α_n
        weights.add_(e_neg.mul_(alpha).mul_((row * scale_neg)[:, None]))
        del e_neg, alpha, buffer
        n_pos = torch.count_nonzero(positive).to(s.dtype)
        mean_pos, mean_neg = pair_sums(s, pos_sum, n_pos, same_set, 1.0, -1.0)
        stats = {
            "active_fraction": (valid & (total > 0)).sum().to(s.dtype) / denominator,
            "mean_pos_dist": mean_pos,
            "mean_neg_dist": mean_neg,
            "n_valid": n_valid,
        }
        return LossOutput(loss_from_distance_weights(value, weights, sim), stat_tensors=stats)


__all__ = ["CircleLoss"]
