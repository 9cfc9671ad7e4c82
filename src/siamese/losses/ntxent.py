"""NT-Xent, the normalised temperature-scaled cross-entropy (Chen, Kornblith, Norouzi and
Hinton, "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020;
Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss Objective", NeurIPS 2016;
van den Oord, Li and Vinyals, InfoNCE, 2018), with class labels.

Every positive pair (a, p) is one term, the cross-entropy of picking p among p and the
anchor's negatives, on cosine similarities s at a temperature τ:

    ℓ(a, p) = −log( exp(s_ap/τ) / (exp(s_ap/τ) + Σ_n exp(s_an/τ)) ) = softplus(L_a − s_ap/τ),

where L_a = log Σ_n exp(s_an/τ) over the anchor's negatives (−∞ when it has none, and then
ℓ = 0). The loss is the mean over all positive pairs, as pytorch-metric-learning's
`NTXentLoss` reduces it (pairs whose anchor has no negative count, at 0).

The derivatives are closed-form: ∂ℓ/∂s_ap = −σ(L_a − s_ap/τ)/τ and
∂ℓ/∂s_an = σ(L_a − s_ap/τ)·softmax_n(s_an/τ)/τ, computed with the value and without autograd;
`CosineMatrix.loss` then attaches them as `loss_from_distance_weights` does for distances, with
the backward of the normalised similarity matrix in closed form (two matrix products), so
no (B, R) tensor is in the graph. O(B·R) time and memory whatever the number of pairs (PML
builds a positive-pairs × negative-pairs matrix: at batch 256 with 10 classes, 8 GB). Masks
are float 0/1 matrices (multiplications are several times faster than masked fills on a CPU).

Differences from PML (documented in the tests): PML adds the smallest normal float inside
the log (a term is capped at about 87 in float32; here it is exact), and returns 0 when the
batch has at most one positive and at most one negative pair (here such a pair is a term).

This module also holds what the cosine-similarity pair losses share (`SupConLoss` uses it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from siamese.distances import as_distance_dtype
from siamese.errors import ConfigError
from siamese.losses.labelled_batch import LabelledBatch, LabelledBatchLoss
from siamese.losses.output import LossOutput


def check_temperature(loss: str, temperature: float) -> float:
    """`temperature` as a float; `ConfigError` unless it is > 0."""
    if not temperature > 0:
        raise ConfigError(f"{loss} temperature must be > 0, got {temperature}")
    return float(temperature)


_NORM_EPS = 1e-12
"""F.normalize's floor on the norm: a zero embedding is the zero vector, cosine 0 with all."""


class _UnitRows:
    """Rows divided by their L2 norm (floored at `_NORM_EPS`), with what the backward needs."""

    def __init__(self, rows: torch.Tensor) -> None:
        norm = torch.linalg.vector_norm(rows, dim=1, keepdim=True)
        self.inverse = 1.0 / norm.clamp_min(_NORM_EPS)
        self.unit = rows * self.inverse
        self.projects = (norm > _NORM_EPS).to(rows.dtype)  # below the floor: a plain scaling

    def backward(self, grad_unit: torch.Tensor) -> torch.Tensor:
        """∂/∂rows from ∂/∂unit: (g − u·(u·g))/‖r‖, or g/ε under the floor (F.normalize's)."""
        along = (self.unit * grad_unit).sum(dim=1, keepdim=True).mul_(self.projects)
        return (grad_unit - self.unit * along).mul_(self.inverse)


class CosineMatrix:
    """The cosine similarities between a batch and its references (the batch itself when
    none are given), after L2 normalisation (a zero embedding has cosine 0 with all), computed
    without autograd: `scaled` gives them, `loss` attaches a loss's derivatives.

    Args:
        embeddings: (B, D); ref_embeddings: (R, D) or None.
    """

    def __init__(self, embeddings: torch.Tensor, ref_embeddings: torch.Tensor | None) -> None:
        self.embeddings = as_distance_dtype(embeddings)
        self.refs = None if ref_embeddings is None else as_distance_dtype(ref_embeddings)
        with torch.no_grad():
            self.x = _UnitRows(self.embeddings.detach())
            self.y = self.x if self.refs is None else _UnitRows(self.refs.detach())

    def scaled(self, scale: float) -> torch.Tensor:
        """(B, R) cosine similarities × `scale`, float32 (float64 for float64 inputs), a new
        tensor without gradient (the caller may overwrite it)."""
        return (self.x.unit * scale) @ self.y.unit.T

    def loss(self, value: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """A scalar equal to `value` whose gradient is Σ weights ⊙ ∂cos (the construction of
        `loss_from_distance_weights`, with the cosine matrix's backward in closed form).

        Args:
            value: 0-d, the loss. weights: (B, R), its derivative in each cosine.
        """
        if self.refs is None:
            return _CosineWeights.apply(value, weights, self, self.embeddings)
        return _CosineWeights.apply(value, weights, self, self.embeddings, self.refs)


class _CosineWeights(torch.autograd.Function):
    """value, with gradient Σ W ⊙ ∂cos: two matrix products and O((B + R)·D) work."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        value: torch.Tensor,
        weights: torch.Tensor,
        matrix: CosineMatrix,
        embeddings: torch.Tensor,
        refs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        ctx.save_for_backward(weights)
        ctx.matrix = matrix
        return value.detach().clone()

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        (weights,) = ctx.saved_tensors
        matrix: CosineMatrix = ctx.matrix
        x, y = matrix.x, matrix.y
        grad_x_unit = weights @ y.unit
        if matrix.refs is None:  # both sides are the batch
            grad_x_unit += weights.T @ x.unit
            return None, None, None, x.backward(grad_x_unit.mul_(grad))
        grad_refs = None
        if ctx.needs_input_grad[4]:
            grad_refs = y.backward((weights.T @ x.unit).mul_(grad))
        grad_embeddings = x.backward(grad_x_unit.mul_(grad)) if ctx.needs_input_grad[3] else None
        return None, None, None, grad_embeddings, grad_refs


class LabelPairs:
    """Which (anchor, reference) pairs are positive and negative, with per-anchor counts.

    Without a reference set (`ref_labels` None) the references are the batch and an example
    is never its own positive.

    Attributes:
        same: (B, R) float 0/1, 1 where the labels are equal (the diagonal included when the
            references are the batch; see `positives`).
        n_pos, n_neg: (B, 1) float positive and negative counts of each anchor.
    """

    def __init__(
        self, labels: torch.Tensor, ref_labels: torch.Tensor | None, dtype: torch.dtype
    ) -> None:
        self.within_batch = ref_labels is None
        ref = labels if ref_labels is None else ref_labels
        # Each label as the position of its first occurrence among all labels sorted: equal
        # labels get equal ranks, exact in `dtype` (< 2^24); comparing floats into a float
        # matrix is several times faster than comparing int64 into a bool one.
        ordered = (labels if ref_labels is None else torch.cat([labels, ref])).sort().values
        rank = torch.searchsorted(ordered, labels).to(dtype)
        ref_rank = rank if ref_labels is None else torch.searchsorted(ordered, ref).to(dtype)
        self.same = torch.empty(labels.shape[0], ref.shape[0], dtype=dtype, device=labels.device)
        torch.eq(rank[:, None], ref_rank[None, :], out=self.same)
        n_same = self.same.sum(dim=1, keepdim=True)
        self.n_pos = n_same - 1.0 if self.within_batch else n_same
        self.n_neg = ref.shape[0] - n_same

    def positives(self) -> torch.Tensor:
        """`same` without the diagonal within a batch (in place), as a float 0/1 mask."""
        if self.within_batch:
            self.same.fill_diagonal_(0.0)
        return self.same

    def cosine_stats(
        self, x: torch.Tensor, pos_sum: torch.Tensor, tau: float
    ) -> dict[str, torch.Tensor]:
        """Mean cosine distance 1 − s of the positive and of the negative pairs (0 if none).

        Args:
            x: (B, R) similarities / τ, the diagonal still finite within a batch.
            pos_sum: 0-d, Σ x over the positive pairs.
            tau: τ.
        """
        others = x.sum() - (x.diagonal().sum() if self.within_batch else 0.0)
        n_pos, n_neg = self.n_pos.sum(), self.n_neg.sum()
        return {
            "mean_pos_dist": (n_pos - pos_sum * tau) / n_pos.clamp_min(1.0),
            "mean_neg_dist": (n_neg - (others - pos_sum) * tau) / n_neg.clamp_min(1.0),
        }


def excluded_offset(temperature: float) -> float:
    """Subtracted from s/τ to exclude a pair from a log-sum-exp: twice the largest spread of
    s/τ (|s| <= 1) plus 1,100, so that, shifted by its row's maximum over the pairs kept, its
    exp is exactly 0 in float32 and float64."""
    return 4.0 / temperature + 1100.0


class NTXentLoss(LabelledBatchLoss):
    """NT-Xent over every positive pair of a labelled batch (PML's `NTXentLoss` with labels).

    Args:
        temperature: τ (> 0).

    Embeddings are L2-normalised here. Without a reference set an example is never its own
    positive or negative; with `ref_embeddings`/`ref_labels`, anchors come from the batch
    and positives/negatives from the reference set.
    """

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        self.temperature = check_temperature("ntxent", temperature)

    def batch_loss(self, batch: LabelledBatch) -> LossOutput:
        """A LossOutput with the mean over positive pairs; `active_fraction` is the mean
        over positive pairs of 1 − p_ap, p_ap the softmax probability of the positive
        against the anchor's negatives (0: every positive wins outright), `n_valid`
        the number of positive pairs, and the distances are cosine distances 1 − s.
        """
        embeddings, labels, ref_embeddings, ref_labels = batch
        tau = self.temperature
        cosines = CosineMatrix(embeddings, ref_embeddings)
        x = cosines.scaled(1.0 / tau)  # s/τ
        pairs = LabelPairs(labels, ref_labels, x.dtype)
        # L_a = log Σ_n exp(x_an), over the negatives only (same-class pairs, and the
        # diagonal, pushed out of the sum)
        offset = torch.full((), -excluded_offset(tau), dtype=x.dtype, device=x.device)
        shifted = torch.addcmul(x, pairs.same, offset)
        row_max = shifted.amax(dim=1, keepdim=True)
        exp_neg = shifted.sub_(row_max).exp_()  # 0 off the negatives (in rows with some)
        neg_total = exp_neg.sum(dim=1, keepdim=True)
        log_neg = torch.where(pairs.n_neg > 0, row_max + neg_total.log(), float("-inf"))
        positive = pairs.positives()
        stats = pairs.cosine_stats(x, (x * positive).sum(), tau)
        gap = torch.sub(log_neg, x, out=x)  # L_a − x_ap (−inf in rows without negatives)
        n_pairs = pairs.n_pos.sum()
        denominator = n_pairs.clamp_min(1.0)
        # (a sum, not a dot: torch's summation is pairwise, a BLAS dot loses ~1e-4 at 4,096²)
        value = F.softplus(gap).mul_(positive).sum() / denominator
        slope = gap.sigmoid_().mul_(positive)  # σ(L_a − x_ap) at positives, 0 elsewhere
        slope_rows = slope.sum(dim=1, keepdim=True)
        # ∂ℓ/∂s: (−σ_ap at positives, (Σ_p σ_ap)·softmax_n at negatives) / (pairs·τ)
        scale = 1.0 / (denominator * tau)
        row_scale = slope_rows * scale / neg_total.clamp_min(1e-30)
        weights = exp_neg.mul_(row_scale).addcmul_(slope, -scale)
        del slope, gap, x
        # σ_ap = 1 − p_ap, p_ap the positive's softmax probability against the negatives
        stats.update(active_fraction=slope_rows.sum() / denominator, n_valid=n_pairs)
        return LossOutput(loss=cosines.loss(value, weights), stat_tensors=stats)


__all__ = [
    "CosineMatrix",
    "LabelPairs",
    "NTXentLoss",
    "check_temperature",
    "excluded_offset",
]
