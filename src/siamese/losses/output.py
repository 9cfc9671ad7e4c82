"""`LossOutput`, what every loss returns, and the gradient-through-distances construction."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class LossOutput:
    """A loss value and the statistics of the step that produced it.

    `loss` is a scalar tensor with a gradient. `stat_tensors` holds detached 0-d tensors so
    that the training loop can collect them without a host synchronisation; `stats` turns
    them into floats (a sync), for logging.

    Example:
        >>> import torch
        >>> from siamese import LossOutput
        >>> out = LossOutput(loss=torch.tensor(0.5), stat_tensors={"n_valid": torch.tensor(3.0)})
        >>> out.stats
        {'n_valid': 3.0}
    """

    loss: torch.Tensor
    stat_tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def stats(self) -> dict[str, float]:
        """The statistics as floats: at least `active_fraction`, `mean_pos_dist`,
        `mean_neg_dist` and `n_valid`."""
        return {name: float(value) for name, value in self.stat_tensors.items()}


def loss_from_distance_weights(
    value: torch.Tensor, weights: torch.Tensor, dist: torch.Tensor
) -> torch.Tensor:
    """A scalar equal to `value` whose gradient is `Σ weights ⊙ ∂dist`.

    Args:
        value: scalar, the loss computed without gradient.
        weights: (B, R) derivative of the loss with respect to each distance.
        dist: (B, R) distances with gradient.
    """
    linear = torch.dot(weights.flatten(), dist.flatten())
    return value + (linear - linear.detach())


def check_reference(ref_embeddings: torch.Tensor | None, ref_labels: torch.Tensor | None) -> None:
    """A reference set is given whole (embeddings and labels) or not at all."""
    if (ref_embeddings is None) != (ref_labels is None):
        raise ValueError("give both ref_embeddings and ref_labels, or neither")
