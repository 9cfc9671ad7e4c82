"""CosFace (Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition", CVPR
2018): the own class's logit is cos θ − m, an additive margin on the cosine."""

from __future__ import annotations

import torch

from siamese.losses.class_weights import ClassWeightLoss


class CosFaceLoss(ClassWeightLoss):
    """CosFace, PML's defaults: margin 0.35, scale 64."""

    def __init__(
        self, num_classes: int, embedding_dim: int, margin: float = 0.35, scale: float = 64.0
    ) -> None:
        super().__init__(num_classes, embedding_dim, scale)
        self.margin = float(margin)

    def target_logits(self, cos_target: torch.Tensor) -> torch.Tensor:
        return cos_target - self.margin


__all__ = ["CosFaceLoss"]
