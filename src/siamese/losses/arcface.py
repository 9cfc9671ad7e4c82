"""ArcFace (Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition",
CVPR 2019): the own class's logit is cos(θ + m), an additive margin on the angle.

Where θ + m would pass π (the logit would rise again as θ grows), it is cos θ − m·sin m
instead, as in the paper's code and PML, so the loss keeps falling as θ shrinks.
"""

from __future__ import annotations

import math

import torch

from siamese.losses.class_weights import ClassWeightLoss, sine


class ArcFaceLoss(ClassWeightLoss):
    """ArcFace, PML's defaults: margin 28.6° (0.5 rad), scale 64.

    Args:
        num_classes, embedding_dim: as `ClassWeightLoss`.
        margin: the angular margin, in degrees.
        scale: s.
        centres: sub-centres per class (1: ArcFace; `SubCenterArcFaceLoss` uses 3).
    """

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        margin: float = 28.6,
        scale: float = 64.0,
        centres: int = 1,
    ) -> None:
        super().__init__(num_classes, embedding_dim, scale, centres)
        self.margin_degrees = float(margin)
        self.margin = math.radians(self.margin_degrees)
        self.cos_m, self.sin_m = math.cos(self.margin), math.sin(self.margin)

    def target_logits(self, cos_target: torch.Tensor) -> torch.Tensor:
        with_margin = cos_target * self.cos_m - sine(cos_target) * self.sin_m
        # θ <= π − m  ⇔  cos θ >= cos(π − m) = −cos m
        fallback = cos_target - self.margin * self.sin_m
        return torch.where(cos_target >= -self.cos_m, with_margin, fallback)


__all__ = ["ArcFaceLoss"]
