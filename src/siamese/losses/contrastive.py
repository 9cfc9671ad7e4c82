"""Contrastive loss (Hadsell, Chopra and LeCun 2006). Pair labels: 1 = same class (genuine),
0 = different (impostor)."""

from __future__ import annotations

import torch

from siamese.distances import Metric, check_metric, paired_distances, pairwise_distances
from siamese.errors import ConfigError
from siamese.losses.output import LossOutput, check_reference, loss_from_distance_weights


def _contrastive_terms(
    d: torch.Tensor, same: torch.Tensor, margin: float, pos_margin: float
) -> torch.Tensor:
    """Per-pair contrastive terms with autograd (the per-pair functional form)."""
    return torch.where(same, torch.relu(d - pos_margin) ** 2, torch.relu(margin - d) ** 2)


def _contrastive_value_and_slope(
    d: torch.Tensor, sign: torch.Tensor, margin: float, pos_margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair contrastive terms and their derivative with respect to the distance.

    `sign` is +1 for genuine pairs and −1 for impostor pairs. The hinge argument is
    d − pos_margin for genuine pairs and margin − d for impostors, i.e.
    sign·(d − (margin + pos_margin)/2) + (margin − pos_margin)/2, which needs no branch and
    only two (B, R) temporaries.
    """
    signed = (
        (d - (margin + pos_margin) / 2).mul_(sign).add_((margin - pos_margin) / 2).clamp_min_(0.0)
    )
    slope = (signed * sign).mul_(2.0)
    return signed.square_(), slope


def contrastive_loss(
    x1: torch.Tensor,
    x2: torch.Tensor,
    same: torch.Tensor,
    margin: float = 1.0,
    metric: Metric | str = "euclidean",
    pos_margin: float = 0.0,
) -> torch.Tensor:
    """Per-pair contrastive loss (Hadsell, Chopra and LeCun 2006):
    `same·max(0, d − pos_margin)² + (1 − same)·max(0, margin − d)²`.

    Args:
        x1, x2: (N, D) embeddings of the two sides of each pair.
        same: (N,) pair labels, 1 = same class (genuine), 0 = different (impostor).
        margin: impostor pairs closer than this are pushed apart.
        metric: distance between the two embeddings.
        pos_margin: genuine pairs closer than this cost nothing (0: the original loss).
    Returns:
        (N,) float32 losses, unreduced.
    """
    d = paired_distances(x1, x2, metric)
    return _contrastive_terms(d, same.bool(), margin, pos_margin)


class ContrastiveLoss(torch.nn.Module):
    """Contrastive loss over every pair of a labelled batch: pairs i < j (or every
    batch × reference pair), genuine when the labels are equal (1 = same class), with the
    terms of `contrastive_loss`; the loss is their mean over all pairs.
    """

    def __init__(
        self, margin: float = 1.0, metric: Metric | str = "euclidean", pos_margin: float = 0.0
    ) -> None:
        super().__init__()
        check_metric(metric)
        if margin < 0 or pos_margin < 0:
            raise ConfigError(
                f"contrastive margins must be >= 0, got margin={margin}, pos_margin={pos_margin}"
            )
        self.margin, self.metric, self.pos_margin = float(margin), metric, float(pos_margin)

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_embeddings: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> LossOutput:
        """Args:
            embeddings: (B, D); labels: (B,) int64.
            ref_embeddings: (R, D) or None; ref_labels: (R,) int64, given with them.
        Returns:
            LossOutput with the mean pair loss.
        """
        check_reference(ref_embeddings, ref_labels)
        dist = pairwise_distances(embeddings, ref_embeddings, self.metric)
        d = dist.detach()
        same = labels[:, None] == (labels if ref_labels is None else ref_labels)[None, :]
        sign = same.to(d.dtype).mul_(2.0).sub_(1.0)  # +1 genuine, −1 impostor
        terms, slope = _contrastive_value_and_slope(d, sign, self.margin, self.pos_margin)
        # Within a batch, every pair i < j appears twice (d is symmetric) and the diagonal
        # (an example with itself: genuine at distance 0) costs nothing, so the mean over
        # pairs i < j is the mean over ordered pairs i != j: no triangular mask is needed.
        n_rows, n_refs = d.shape
        self_pairs = n_rows if ref_labels is None else 0
        count = float(n_rows * n_refs - self_pairs)
        denominator = max(count, 1.0)
        n_genuine = same.sum() - self_pairs
        genuine_sum = (torch.dot(d.flatten(), sign.flatten()) + d.sum()) / 2
        stats = {
            "active_fraction": (terms > 0).sum() / denominator,
            "mean_pos_dist": genuine_sum / n_genuine.clamp_min(1),
            "mean_neg_dist": (d.sum() - genuine_sum) / (count - n_genuine).clamp_min(1),
            "n_valid": torch.tensor(count / (2 if ref_labels is None else 1)),
        }
        loss = loss_from_distance_weights(terms.sum() / denominator, slope.div_(denominator), dist)
        return LossOutput(loss=loss, stat_tensors=stats)
