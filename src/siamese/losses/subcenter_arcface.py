"""Sub-centre ArcFace (Deng et al., "Sub-center ArcFace: Boosting Face Recognition by
Large-scale Noisy Web Faces", ECCV 2020): K weight vectors per class, a class's cosine that of
its nearest sub-centre, so that noisy or atypical images gather around a sub-centre of their
own instead of pulling the class's main one; after training, images far from their class's
dominant sub-centre can be dropped as label noise (`outliers`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from siamese.losses.arcface import ArcFaceLoss


class SubCenterArcFaceLoss(ArcFaceLoss):
    """ArcFace with K sub-centres per class; PML's defaults: K = 3, margin 28.6°, scale 64."""

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        margin: float = 28.6,
        scale: float = 64.0,
        centres: int = 3,
    ) -> None:
        super().__init__(num_classes, embedding_dim, margin, scale, centres)

    def outliers(
        self, embeddings: torch.Tensor, labels: torch.Tensor, threshold: float = 75.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The images farther than `threshold` degrees from their class's dominant sub-centre
        (the one most of the class's images are nearest to), as the paper's cleaning step.

        Args:
            embeddings: (N, D); labels: (N,) int64 class indices.
        Returns:
            (outlier indices (M,) int64, ascending; dominant sub-centres (C, D), zero for a
            class without images).
        """
        with torch.no_grad():
            z = F.normalize(embeddings, dim=1)
            w = F.normalize(self.weight, dim=1).view(self.num_classes, self.centres, -1)
            cos = torch.einsum("nd,nkd->nk", z, w[labels])  # (N, K) to own sub-centres
            nearest = cos.argmax(dim=1)
            counts = torch.zeros(self.num_classes, self.centres, dtype=torch.long)
            counts.index_put_((labels, nearest), torch.ones_like(labels), accumulate=True)
            dominant = counts.argmax(dim=1)  # (C,) the most chosen sub-centre
            to_dominant = cos.gather(1, dominant[labels][:, None]).squeeze(1)
            drop = to_dominant < math.cos(math.radians(threshold))
            present = counts.sum(dim=1) > 0
            centres = self.weight[torch.arange(self.num_classes) * self.centres + dominant]
            centres = torch.where(present[:, None], centres, torch.zeros_like(centres))
            return torch.nonzero(drop).flatten(), centres.detach().clone()


__all__ = ["SubCenterArcFaceLoss"]
