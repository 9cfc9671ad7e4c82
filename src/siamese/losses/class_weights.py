"""What the classification losses share: one learnable weight vector per training class, the
cosine between each embedding and each class's weight, a margin on the embedding's own class
(the subclass says which), a scale, and cross-entropy over the classes.

The class weights are the loss's own parameters: they train with the model (at the loss's own
learning rate), are saved in checkpoints, and are never part of the exported encoder. Labels
are class indices in [0, num_classes) (the training objective maps the data's labels to
them); they are not checked here, to keep the step free of host synchronisation.

Never NaN: the angle is never taken (arccos has an infinite slope at ±1); cos(θ + m) is
expanded as cos θ cos m − sin θ sin m with sin θ = √max(1 − cos²θ, ε), and a zero embedding
has cosine 0 with every class.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from siamese.errors import ConfigError
from siamese.losses.output import LossOutput

SIN_FLOOR = 1e-12
"""sin²θ is floored here before its square root (a finite slope at θ = 0 or π)."""


class ClassWeightLoss(torch.nn.Module):
    """Cross-entropy over cosine logits against learnable class weights, with a margin on each
    embedding's own class (`target_logits`, which subclasses define).

    Args:
        num_classes: training classes C. embedding_dim: D.
        scale: s, the logits' multiplier (the softmax's inverse temperature).
        centres: weight vectors per class (K > 1: sub-centres; a class's cosine is that of
            its nearest sub-centre).
    """

    def __init__(self, num_classes: int, embedding_dim: int, scale: float, centres: int = 1):
        super().__init__()
        if num_classes < 1 or embedding_dim < 1 or centres < 1:
            raise ConfigError(
                f"a classification loss needs num_classes, embedding_dim and centres >= 1, got "
                f"{num_classes}, {embedding_dim}, {centres}"
            )
        if not scale > 0:
            raise ConfigError(f"the loss's scale must be > 0, got {scale}")
        self.num_classes, self.embedding_dim = int(num_classes), int(embedding_dim)
        self.scale, self.centres = float(scale), int(centres)
        # one row per class (and sub-centre): (C·K, D), initialised as PML does (normal)
        self.weight = torch.nn.Parameter(
            torch.empty(self.num_classes * self.centres, embedding_dim)
        )
        torch.nn.init.normal_(self.weight)

    def cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, C) cosine between each embedding and each class (its nearest sub-centre)."""
        cos = F.normalize(embeddings, dim=1) @ F.normalize(self.weight, dim=1).T
        if self.centres > 1:
            cos = cos.view(-1, self.num_classes, self.centres).amax(dim=2)
        return cos

    def target_logits(self, cos_target: torch.Tensor) -> torch.Tensor:
        """(B,) the unscaled logit of each embedding's own class from its cosine (B,)."""
        raise NotImplementedError

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        """Args:
            embeddings: (B, D); labels: (B,) int64 class indices in [0, num_classes).
        Returns:
            LossOutput with the mean cross-entropy; `active_fraction` is the share of
            embeddings whose own class does not win by the margin, `mean_pos_dist` the mean
            cosine distance to the own class, `mean_neg_dist` to the others.
        """
        cos = self.cosines(embeddings)
        own = labels[:, None]
        target = cos.gather(1, own)
        logits = cos.scatter(1, own, self.target_logits(target.squeeze(1))[:, None])
        logits = logits * self.scale
        loss = F.cross_entropy(logits, labels)
        with torch.no_grad():
            wins = logits.argmax(dim=1) == labels
            others = cos.sum(dim=1) - target.squeeze(1)
            n_others = max(self.num_classes - 1, 1)
            stats = {
                "active_fraction": (~wins).float().mean(),
                "mean_pos_dist": (1 - target).mean(),
                "mean_neg_dist": (1 - others / n_others).mean(),
                "n_valid": torch.tensor(float(embeddings.shape[0])),
            }
        return LossOutput(loss=loss, stat_tensors=stats)


def sine(cos: torch.Tensor) -> torch.Tensor:
    """sin θ of an angle in [0, π] from its cosine, with a finite slope everywhere."""
    return (1 - cos * cos).clamp_min(SIN_FLOOR).sqrt()


def degrees_to_radians(degrees: float) -> float:
    return math.radians(float(degrees))


__all__ = ["ClassWeightLoss", "degrees_to_radians", "sine"]
