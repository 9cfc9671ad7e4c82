"""Multi-similarity loss (Wang, Han, Huang, Dong and Scott, Multi-Similarity Loss with General
Pair Weighting for Deep Metric Learning, CVPR 2019), with the paper's pair miner.

On the cosine similarities s of an anchor a to its positives P and negatives N,

    L_a = (1/α) log(1 + Σ_{p∈P} exp(−α (s_ap − λ))) + (1/β) log(1 + Σ_{n∈N} exp(β (s_an − λ))),

and the loss is the mean of L_a over the B anchors of the batch (an anchor left without pairs
counts 0), as pytorch-metric-learning's `MultiSimilarityLoss` reduces it. The miner first keeps
the informative pairs (`multi_similarity_pairs`): negatives more similar than the anchor's
least similar positive less ε, positives less similar than its most similar negative plus ε.

The derivative of each log(1 + Σ exp z) term with respect to each z is a softmax weight, so the
value and the derivative with respect to every similarity are computed without autograd and
only the (B, R) similarity matrix is in the graph (`loss_from_distance_weights`).

Also the helpers the other pair-weighting losses (circle, lifted structure) share:
`pair_similarities`, `pair_masks`, `masked_extreme`, `similarity_pairs`, `exp_rows`,
`pair_count` and `pair_sums`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from siamese.distances import as_distance_dtype
from siamese.errors import ConfigError
from siamese.losses.labelled_batch import LabelledBatch, LabelledBatchLoss
from siamese.losses.output import LossOutput, loss_from_distance_weights


def pair_similarities(
    embeddings: torch.Tensor, ref_embeddings: torch.Tensor | None = None
) -> torch.Tensor:
    """Cosine similarity between every embedding and every reference, with gradient.

    The rows are L2-normalised first (a zero row stays zero: similarity 0 with everything).

    Args:
        embeddings: (B, D); ref_embeddings: (R, D), or None for the batch itself.
    Returns:
        (B, R) float32 (float64 for float64 inputs) similarities in [−1, 1].
    """
    x = F.normalize(as_distance_dtype(embeddings), dim=1, eps=1e-12)
    y = x if ref_embeddings is None else F.normalize(as_distance_dtype(ref_embeddings), dim=1)
    return x @ y.T


def pair_masks(
    labels: torch.Tensor, ref_labels: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (B, R) bool masks of positive and negative pairs: `siamese.mining`'s
    `positive_negative_masks` (an example is never its own positive within the batch), with
    two (B, R) tensors made instead of five.

    Args:
        labels: (B,) int64; ref_labels: (R,) int64, or None for the batch itself.
    Returns:
        (positive, negative): (B, R) bool, disjoint.
    """
    positive = labels[:, None] == (labels if ref_labels is None else ref_labels)[None, :]
    negative = ~positive
    if ref_labels is None:
        positive.fill_diagonal_(False)
    return positive, negative


def masked_extreme(
    values: torch.Tensor, mask: torch.Tensor, largest: bool, buffer: torch.Tensor
) -> torch.Tensor:
    """Each row's largest (or smallest) value within `mask`: −∞ (+∞) where the row has none.

    Args:
        values: (B, R); mask: (B, R) bool; buffer: (B, R) scratch of values' dtype (written).
    Returns:
        (B,) of values' dtype.
    """
    fill = float("-inf") if largest else float("inf")
    if values.shape[1] == 0:  # no references (a reduction needs a column)
        return values.new_full((values.shape[0],), fill)
    torch.where(mask, values, values.new_full((), fill), out=buffer)
    return buffer.amax(dim=1) if largest else buffer.amin(dim=1)


class SimilarityPairs(NamedTuple):
    """A batch's cosine similarities to its references, which pairs are positive and negative,
    and each anchor's least similar positive and most similar negative: what the pair-weighting
    losses on cosine similarities (multi-similarity, circle) start from.

    Attributes:
        sim: (B, R) cosine similarities, with gradient (`pair_similarities`).
        s: (B, R) `sim` detached.
        positive, negative: (B, R) bool masks of the positive and negative pairs (`pair_masks`).
        buffer: (B, R) scratch of s's dtype, free for the caller to overwrite.
        pos_sum: 0-d, Σ s over the positive pairs (for the statistics).
        least_pos: (B,) each anchor's least similar positive, +∞ where it has none.
        most_neg: (B,) each anchor's most similar negative, −∞ where it has none.
    """

    sim: torch.Tensor
    s: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor
    buffer: torch.Tensor
    pos_sum: torch.Tensor
    least_pos: torch.Tensor
    most_neg: torch.Tensor


def similarity_pairs(batch: LabelledBatch) -> SimilarityPairs:
    """The cosine similarities of `batch`'s anchors to its references (the batch itself when it
    has none), split into positive and negative pairs, with each row's extremes."""
    embeddings, labels, ref_embeddings, ref_labels = batch
    sim = pair_similarities(embeddings, ref_embeddings)
    s = sim.detach()
    positive, negative = pair_masks(labels, ref_labels)
    buffer = torch.where(positive, s, 0.0)
    pos_sum = buffer.sum()
    least_pos = masked_extreme(s, positive, largest=False, buffer=buffer)
    most_neg = masked_extreme(s, negative, largest=True, buffer=buffer)
    return SimilarityPairs(sim, s, positive, negative, buffer, pos_sum, least_pos, most_neg)


EXP_FLOOR = -80.0
"""Exponents are clamped here before `exp`: exp(−80) ≈ 2e−35 is still a normal float32 (CPUs
slow down by 10–40× on subnormal results, and on −∞), and anything that small next to the
row's largest term, exp(0) = 1, is below float64's rounding too."""


def exp_rows(
    shifted: torch.Tensor,
    shift: torch.Tensor,
    mask: torch.Tensor,
    add_one: bool,
    present: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row, log Σ exp(z) over the entries in `mask`, from z − shift; `shifted` is
    overwritten with the exponentials (0 outside the mask). No gradient is taken.

    The shift of each row is (about) its largest z within the mask, so every exponent there is
    <= 0 and nothing overflows; entries outside the mask may hold anything but NaN (±∞
    included). With `add_one` the sum also holds exp(0), log(1 + Σ exp z), and the shift must
    be >= 0. A row without entries has log-sum-exp 0 (pytorch-metric-learning's convention
    for a masked log-sum-exp), and no weights.

    Args:
        shifted: (B, R), z − shift[:, None]. shift: (B,), finite.
        mask: (B, R) bool, the entries that count.
        add_one: include the exp(0) term.
        present: (B,) bool, whether each row has an entry in the mask; needed with `add_one`
            (without it, a row has an entry exactly when its sum is > 0: every entry's
            exponential is at least exp(EXP_FLOOR)).
    Returns:
        (lse, scale, present): lse (B,); scale (B,) such that shifted · scale[:, None] (the
        exponentials) is ∂lse/∂z, a softmax over the row, 0 for a row without entries;
        present (B,) bool.
    """
    e = shifted.clamp_(EXP_FLOOR, 0.0).exp_()
    torch.where(mask, e, e.new_zeros(()), out=e)  # in place: no (B, R) temporary
    total = e.sum(dim=1)
    if add_one:
        total = total + (-shift).exp()
    if present is None:
        present = total > 0
    lse = torch.where(present, shift + total.log(), 0.0)
    scale = torch.where(present, total.reciprocal(), 0.0)
    return lse, scale, present


def pair_count(values: torch.Tensor, same_set: bool) -> int:
    """How many pairs a (B, R) matrix holds: all of them, less the diagonal within one set
    (every other pair is positive or negative)."""
    return values.numel() - (values.shape[0] if same_set else 0)


def pair_sums(
    values: torch.Tensor,
    pos_sum: torch.Tensor,
    n_pos: torch.Tensor,
    same_set: bool,
    offset: float = 0.0,
    sign: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of `offset + sign·values` over the positive and over the negative pairs (0 for a
    side without pairs), given the positives' sum and count: the statistics `mean_pos_dist`
    and `mean_neg_dist` (offset 1 and sign −1: the cosine distance 1 − s from similarities).

    Every pair is positive or negative except, within one set (`same_set`), the diagonal, so
    the negatives' sum and count are the whole's less the positives' and the diagonal's.

    Args:
        values: (B, R); pos_sum: 0-d, Σ values over the positive pairs; n_pos: 0-d, their
            count, of values' dtype. same_set: the references are the batch itself.
    Returns:
        (mean_pos, mean_neg): 0-d tensors.
    """
    n_neg = pair_count(values, same_set) - n_pos
    neg_sum = values.sum() - pos_sum
    if same_set:
        neg_sum = neg_sum - values.diagonal().sum()
    mean_pos = (offset * n_pos + sign * pos_sum) / n_pos.clamp_min(1.0)
    mean_neg = (offset * n_neg + sign * neg_sum) / n_neg.clamp_min(1.0)
    return mean_pos, mean_neg


def multi_similarity_pairs(
    sim: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, epsilon: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The multi-similarity miner (Wang et al. 2019, §3.3): the informative pairs of each anchor.

    A negative is kept when s_an > min_p s_ap − ε (more similar than the anchor's least similar
    positive, less ε); a positive when s_ap < max_n s_an + ε (less similar than its most
    similar negative, plus ε). An anchor without positives keeps no negatives and one without
    negatives keeps no positives: the semantics of pytorch-metric-learning's
    `MultiSimilarityMiner`. Masks only: no host synchronisation.

    Args:
        sim: (B, R) similarities (no gradient is needed).
        positive, negative: (B, R) bool masks of the valid positive and negative pairs.
        epsilon: the margin ε >= 0.
    Returns:
        (positive_kept, negative_kept): (B, R) bool, subsets of `positive` and `negative`.
    """
    buffer = torch.empty_like(sim)
    least_pos = masked_extreme(sim, positive, largest=False, buffer=buffer)
    most_neg = masked_extreme(sim, negative, largest=True, buffer=buffer)
    del buffer
    return _mine(sim, positive, negative, least_pos, most_neg, epsilon)[:2]


def _mine(
    sim: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    least_pos: torch.Tensor,
    most_neg: torch.Tensor,
    epsilon: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`multi_similarity_pairs` from each row's least similar positive and most similar
    negative (B,), and whether each row keeps a positive and a negative (B,): a row keeps some
    positive exactly when it keeps its least similar one, and likewise for negatives."""
    pos_limit = most_neg + epsilon  # −∞ without negatives: nothing kept
    neg_limit = least_pos - epsilon  # +∞ without positives
    positive_kept = sim < pos_limit[:, None]
    positive_kept &= positive
    negative_kept = sim > neg_limit[:, None]
    negative_kept &= negative
    return positive_kept, negative_kept, least_pos < pos_limit, most_neg > neg_limit


def _check_positive(loss: str, name: str, value: float) -> float:
    if not value > 0:  # also rejects NaN
        raise ConfigError(f"{loss} {name} must be > 0, got {value!r}")
    return float(value)


class MultiSimilarityLoss(LabelledBatchLoss):
    """Multi-similarity loss on cosine similarities, optionally after its miner (see the
    module docstring).

    Args:
        alpha: the positive pairs' scale α > 0.
        beta: the negative pairs' scale β > 0.
        base: the similarity offset λ in [−1, 1].
        miner: mine the informative pairs first (`multi_similarity_pairs`).
        epsilon: the miner's margin ε >= 0.

    With `ref_embeddings`/`ref_labels`, anchors come from the batch and positives/negatives
    from the reference set (no self-exclusion there). Embeddings are L2-normalised here.

    Statistics: `n_valid` the pairs the loss trains on (after mining), `active_fraction` their
    share of the batch's pairs, `mean_pos_dist`/`mean_neg_dist` the mean cosine distance
    1 − s over all the batch's positive/negative pairs.
    """

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 50.0,
        base: float = 0.5,
        miner: bool = True,
        epsilon: float = 0.1,
    ) -> None:
        super().__init__()
        self.alpha = _check_positive("multi_similarity", "alpha", alpha)
        self.beta = _check_positive("multi_similarity", "beta", beta)
        if not -1.0 <= base <= 1.0:
            raise ConfigError(f"multi_similarity base must be >= -1 and <= 1, got {base!r}")
        if not isinstance(miner, bool):
            raise ConfigError(f"multi_similarity miner must be true or false, got {miner!r}")
        if not epsilon >= 0:
            raise ConfigError(f"multi_similarity epsilon must be >= 0, got {epsilon!r}")
        self.base, self.miner, self.epsilon = float(base), miner, float(epsilon)

    def batch_loss(self, batch: LabelledBatch) -> LossOutput:
        """A LossOutput with the mean over anchors of L_a."""
        sim, s, positive, negative, buffer, pos_sum, least_pos, most_neg = similarity_pairs(batch)
        same_set = batch.ref_labels is None
        if self.miner:
            pos_kept, neg_kept, has_pos, has_neg = _mine(
                s, positive, negative, least_pos, most_neg, self.epsilon
            )
        else:
            pos_kept, neg_kept = positive, negative
            has_pos, has_neg = least_pos < float("inf"), most_neg > float("-inf")
        a, b, base = self.alpha, self.beta, self.base
        # Positives: z = −α(s − λ), largest at the least similar kept positive, which is the
        # least similar positive; negatives: z = β(s − λ), largest at the most similar one.
        # With the one term exp(0), each row shifts by max(0, its largest z).
        shift_pos = torch.where(has_pos, (least_pos - base).mul_(-a).clamp_min_(0.0), 0.0)
        shift_neg = torch.where(has_neg, (most_neg - base).mul_(b).clamp_min_(0.0), 0.0)
        e_pos = torch.mul(s, -a, out=buffer).add_((a * base - shift_pos)[:, None])
        lse_pos, scale_pos, _ = exp_rows(e_pos, shift_pos, pos_kept, True, has_pos)
        e_neg = torch.mul(s, b).add_((-b * base - shift_neg)[:, None])
        lse_neg, scale_neg, _ = exp_rows(e_neg, shift_neg, neg_kept, True, has_neg)
        n_rows = max(s.shape[0], 1)
        value = (lse_pos / a + lse_neg / b).sum() / n_rows
        # ∂L/∂s = (1/B)·softmax·(∂z/∂s)/(α or β): −softmax on positives, +softmax on negatives.
        weights = e_neg.mul_((scale_neg / n_rows)[:, None])
        weights.sub_(e_pos.mul_((scale_pos / n_rows)[:, None]))
        del e_pos, buffer
        n_pos = torch.count_nonzero(positive).to(s.dtype)
        n_pairs = pair_count(s, same_set)
        if self.miner:
            n_kept = (torch.count_nonzero(pos_kept) + torch.count_nonzero(neg_kept)).to(s.dtype)
        else:
            n_kept = s.new_full((), float(n_pairs))
        mean_pos, mean_neg = pair_sums(s, pos_sum, n_pos, same_set, 1.0, -1.0)
        stats = {
            "active_fraction": n_kept / max(n_pairs, 1),
            "mean_pos_dist": mean_pos,
            "mean_neg_dist": mean_neg,
            "n_valid": n_kept,
        }
        return LossOutput(loss_from_distance_weights(value, weights, sim), stat_tensors=stats)


__all__ = [
    "EXP_FLOOR",
    "MultiSimilarityLoss",
    "exp_rows",
    "masked_extreme",
    "multi_similarity_pairs",
    "pair_count",
    "pair_masks",
    "pair_similarities",
    "pair_sums",
    "similarity_pairs",
]
