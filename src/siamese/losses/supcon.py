"""Supervised contrastive loss (Khosla, Teterwak, Wang, Sarna, Tian, Isola, Maschinot, Liu
and Krishnan, "Supervised Contrastive Learning", NeurIPS 2020; the L_out form).

Per anchor a with positives P(a), on cosine similarities s at a temperature τ, against all
its other examples A(a) (positives and negatives; never a itself):

    ℓ_a = −(1/|P(a)|) Σ_{p∈P(a)} log( exp(s_ap/τ) / Σ_{k∈A(a)} exp(s_ak/τ) )
        = LSE_a − mean_{p∈P(a)} s_ap/τ,          LSE_a = log Σ_{k∈A(a)} exp(s_ak/τ).

Reduction: as pytorch-metric-learning's `SupConLoss` (its `AvgNonZeroReducer`): the mean of
ℓ_a over the anchors whose ℓ_a > 0 (an anchor without positives has ℓ_a = 0, and so has one
whose only other example is its single positive); 0 when the batch has no positive pair or no
negative pair at all. (One difference, documented in the tests: PML also returns 0 when the
batch has at most one positive and at most one negative pair; here that anchor counts.)

The derivative is closed-form, ∂ℓ_a/∂s_ak = (softmax_{A(a)}(s_a·/τ)_k − [k∈P(a)]/|P(a)|)/τ,
computed with the value and without autograd; `CosineMatrix.loss` (see `siamese.losses.ntxent`)
attaches it with the similarity matrix's backward in closed form: no (B, R) tensor in the graph.
"""

from __future__ import annotations

import torch

from siamese.losses.labelled_batch import LabelledBatch, LabelledBatchLoss
from siamese.losses.ntxent import CosineMatrix, LabelPairs, check_temperature
from siamese.losses.output import LossOutput


class SupConLoss(LabelledBatchLoss):
    """Supervised contrastive loss over a labelled batch (PML's `SupConLoss`).

    Args:
        temperature: τ (> 0).

    Embeddings are L2-normalised here. Without a reference set an example is never its own
    positive or in its own denominator; with `ref_embeddings`/`ref_labels`, anchors come
    from the batch and positives/negatives from the reference set.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = check_temperature("supcon", temperature)

    def batch_loss(self, batch: LabelledBatch) -> LossOutput:
        """A LossOutput with the mean anchor loss; `active_fraction` is the share of the
        averaged anchors whose loss exceeds log(2·|P(a)|) (its value when the positives,
        equally similar, hold half the softmax mass), `n_valid` the number of anchors
        averaged, and the distances are cosine distances 1 − s.
        """
        embeddings, labels, ref_embeddings, ref_labels = batch
        tau = self.temperature
        cosines = CosineMatrix(embeddings, ref_embeddings)
        x = cosines.scaled(1.0 / tau)  # s/τ
        pairs = LabelPairs(labels, ref_labels, x.dtype)
        positive = pairs.positives()
        n_pos = pairs.n_pos
        pos_rows = (x * positive).sum(dim=1, keepdim=True)
        stats = pairs.cosine_stats(x, pos_rows.sum(), tau)
        pos_mean = pos_rows / n_pos.clamp_min(1.0)
        if pairs.within_batch:
            x.diagonal().fill_(float("-inf"))  # an example is not in its own denominator
        # finite in a row with nothing (B = 1)
        row_max = x.amax(dim=1, keepdim=True).clamp_min_(torch.finfo(x.dtype).min)
        exp_others = x.sub_(row_max).exp_()
        total = exp_others.sum(dim=1, keepdim=True).clamp_min_(1e-30)
        lse = row_max + total.log()
        anchor_loss = torch.where(n_pos > 0, lse - pos_mean, 0.0).clamp_min_(0.0)
        # PML: 0 unless the batch has a positive and a negative pair; the mean over the
        # anchors whose loss is > 0
        gate = (n_pos.sum() > 0) & (pairs.n_neg.sum() > 0)
        counted = ((anchor_loss > 0) & gate).to(x.dtype)
        n_counted = counted.sum()
        denominator = n_counted.clamp_min(1.0)
        value = (anchor_loss * counted).sum() / denominator
        # active: ℓ_a > log(2·|P(a)|), its value when the positives, equally similar, hold
        # half the softmax mass (ℓ_a >= log|P(a)| − log(their mass), by Jensen)
        above = anchor_loss > (2.0 * n_pos).clamp_min(1.0).log()
        n_active = torch.dot(above.flatten().to(x.dtype), counted.flatten())
        # ∂ℓ_a/∂s_ak = (softmax_k − [k ∈ P(a)]/|P(a)|)/τ, on the counted anchors
        scale = counted / (denominator * tau)
        weights = exp_others.mul_(scale / total)
        weights.addcmul_(positive, -scale / n_pos.clamp_min(1.0))
        stats.update(active_fraction=n_active / denominator, n_valid=n_counted)
        return LossOutput(loss=cosines.loss(value, weights), stat_tensors=stats)


__all__ = ["SupConLoss"]
