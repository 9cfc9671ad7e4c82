"""Normalised softmax (Zhai and Wu, "Classification is a Strong Baseline for Deep Metric
Learning", BMVC 2019): cross-entropy over the cosines to the class weights divided by a
temperature, with no margin."""

from __future__ import annotations

import torch

from siamese.errors import ConfigError
from siamese.losses.class_weights import ClassWeightLoss


class NormalizedSoftmaxLoss(ClassWeightLoss):
    """Normalised softmax, PML's default temperature 0.05 (scale 1 / 0.05 = 20)."""

    def __init__(self, num_classes: int, embedding_dim: int, temperature: float = 0.05) -> None:
        if not temperature > 0:
            raise ConfigError(f"the temperature must be > 0, got {temperature}")
        super().__init__(num_classes, embedding_dim, 1.0 / temperature)
        self.temperature = float(temperature)

    def target_logits(self, cos_target: torch.Tensor) -> torch.Tensor:
        return cos_target


__all__ = ["NormalizedSoftmaxLoss"]
