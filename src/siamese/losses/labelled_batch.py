"""`LabelledBatchLoss`, the base of the losses over a labelled batch and an optional reference
set (the pair and triplet losses, which `CrossBatchMemory` can give its memory as references),
and `LabelledBatch`, what such a loss computes on."""

from __future__ import annotations

from typing import NamedTuple

import torch

from siamese.losses.output import LossOutput, check_reference


class LabelledBatch(NamedTuple):
    """A labelled batch of embeddings and the references its anchors are compared with.

    Attributes:
        embeddings: (B, D) float anchors.
        labels: (B,) int64 class labels.
        ref_embeddings: (R, D) float positives/negatives, or None for the batch itself.
        ref_labels: (R,) int64 class labels, None exactly when `ref_embeddings` is.
    """

    embeddings: torch.Tensor
    labels: torch.Tensor
    ref_embeddings: torch.Tensor | None
    ref_labels: torch.Tensor | None


class LabelledBatchLoss(torch.nn.Module):
    """A loss over a labelled batch, with an optional reference set: without one, an anchor's
    positives and negatives are the other examples of the batch; with one, they come from the
    reference set (no self-exclusion there). Subclasses compute it in `batch_loss`."""

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_embeddings: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> LossOutput:
        """Args:
            embeddings: (B, D) anchors; labels: (B,) int64.
            ref_embeddings: (R, D) or None for the batch itself; ref_labels: (R,) int64,
                given exactly when `ref_embeddings` is.
        Returns:
            LossOutput: the loss and its statistics, as the subclass's `batch_loss` says.
        Raises:
            ValueError: only one of `ref_embeddings` and `ref_labels` is given.
        """
        check_reference(ref_embeddings, ref_labels)
        return self.batch_loss(LabelledBatch(embeddings, labels, ref_embeddings, ref_labels))

    def batch_loss(self, batch: LabelledBatch) -> LossOutput:
        """The loss of `batch` (its reference set already checked)."""
        raise NotImplementedError


__all__ = ["LabelledBatch", "LabelledBatchLoss"]
