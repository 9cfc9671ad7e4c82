"""Koch et al.'s pair classifier: a logistic unit on |f(a) − f(b)|."""

from __future__ import annotations

import torch

from siamese.distances import pairwise_distances
from siamese.losses.labelled_batch import LabelledBatch, LabelledBatchLoss
from siamese.losses.output import LossOutput, check_reference


class PairClassifierLoss(LabelledBatchLoss):
    """A logistic unit on the component-wise distance |f(a) − f(b)| (Koch, Zemel and
    Salakhutdinov 2015): `p(same) = σ(w·|f(a) − f(b)| + b)`, trained with binary
    cross-entropy (1 = same class). `w` and `b` are this module's parameters: give them to
    the optimiser with the model's.

    Over a labelled batch, every pair i < j (or batch × reference pair) counts; genuine and
    impostor pairs are weighted to contribute equally (a P×K batch has far more impostors).
    Memory is O(B²·D).

    Example:
        >>> import torch
        >>> from siamese import PairClassifierLoss
        >>> _ = torch.manual_seed(0)
        >>> loss_fn = PairClassifierLoss(embedding_dim=4)
        >>> embeddings = torch.randn(6, 4)
        >>> labels = torch.tensor([0, 0, 1, 1, 2, 2])
        >>> out = loss_fn(embeddings, labels)
        >>> round(out.loss.item(), 4), out.stats["n_valid"]  # 15 pairs i < j
        (0.8345, 15.0)
        >>> tuple(loss_fn.logits(embeddings[:2], embeddings[2:4]).shape)  # one per pair
        (2,)
    """

    def __init__(self, embedding_dim: int) -> None:
        super().__init__()
        self.head = torch.nn.Linear(embedding_dim, 1)

    def logits(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """(…, D) and (…, D) embeddings → (…) logits of "same class"."""
        return self.head((x1.float() - x2.float()).abs()).squeeze(-1)

    def pair_loss(self, x1: torch.Tensor, x2: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        """(N,) per-pair cross-entropy for pairs (x1[i], x2[i]) with labels `same` (1 = genuine)."""
        return torch.nn.functional.binary_cross_entropy_with_logits(
            self.logits(x1, x2), same.float(), reduction="none"
        )

    def batch_loss(self, batch: LabelledBatch) -> LossOutput:
        """Returns the class-balanced mean cross-entropy over the batch's pairs."""
        embeddings, labels, ref_embeddings, ref_labels = batch
        dist, same, pairs = _all_pairs(embeddings, labels, ref_embeddings, ref_labels, "euclidean")
        ref = embeddings if ref_embeddings is None else ref_embeddings
        logits = self.logits(embeddings[:, None, :], ref[None, :, :])
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, same.float(), reduction="none"
        )
        genuine, impostor = (same * pairs).float(), (~same * pairs).float()
        n_genuine, n_impostor = genuine.sum(), impostor.sum()
        kinds = (n_genuine > 0).float() + (n_impostor > 0).float()
        loss = (
            (bce * genuine).sum() / n_genuine.clamp_min(1.0)
            + (bce * impostor).sum() / n_impostor.clamp_min(1.0)
        ) / kinds.clamp_min(1.0)
        wrong = ((logits > 0) != same) & pairs
        out = _pair_statistics(wrong.float(), dist.detach(), same, pairs)
        out.loss = loss + embeddings.sum() * 0.0
        return out


def _all_pairs(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    ref_embeddings: torch.Tensor | None,
    ref_labels: torch.Tensor | None,
    metric: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distances (B, R), genuine mask (B, R) and the mask of pairs that count (B, R): i < j
    within a batch, every pair against a reference set."""
    check_reference(ref_embeddings, ref_labels)
    dist = pairwise_distances(embeddings, ref_embeddings, metric)
    ref = labels if ref_labels is None else ref_labels
    same = labels[:, None] == ref[None, :]
    if ref_labels is None:
        pairs = torch.ones_like(same).triu(diagonal=1)
    else:
        pairs = torch.ones_like(same)
    return dist, same, pairs


def _pair_statistics(
    terms: torch.Tensor, d: torch.Tensor, same: torch.Tensor, pairs: torch.Tensor
) -> LossOutput:
    """Statistics over the counted `pairs` (B, R); `active_fraction` is the share whose term
    is > 0. The returned output's loss is a placeholder for the caller to set."""
    count = pairs.sum().to(d.dtype)
    genuine, impostor = same & pairs, ~same & pairs
    stats = {
        "active_fraction": ((terms > 0) & pairs).sum() / count.clamp_min(1.0),
        "mean_pos_dist": (d * genuine).sum() / genuine.sum().clamp_min(1),
        "mean_neg_dist": (d * impostor).sum() / impostor.sum().clamp_min(1),
        "n_valid": count,
    }
    return LossOutput(loss=torch.zeros((), dtype=d.dtype, device=d.device), stat_tensors=stats)
