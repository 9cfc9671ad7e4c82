"""Verification metrics: is a pair the same class or not?

Every function takes `distances` (P,) — lower means more similar — and `same` (P,), the pair
labels with 1 = same class (genuine) and 0 = different class (impostor). A pair is accepted
as genuine when its distance is <= the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from siamese.errors import DataError


@dataclass
class RocCurve:
    """Operating points for every threshold, from accepting nothing to accepting everything.

    Attributes:
        far: (T,) false-accept rate (impostors accepted / impostors).
        tar: (T,) true-accept rate (genuine accepted / genuine).
        thresholds: (T,) distance thresholds; the first is -inf (accept nothing).
    """

    far: torch.Tensor
    tar: torch.Tensor
    thresholds: torch.Tensor

    def auc(self) -> float:
        """Area under the curve (trapezoids, so ties count one half)."""
        return float(torch.trapezoid(self.tar, self.far))

    def eer(self) -> float:
        """Equal error rate: where FAR equals FRR (1 − TAR), linearly interpolated between
        the two points around the crossing."""
        gap = self.far - (1 - self.tar)  # rises from -1 to 1 as the threshold grows
        i = int(torch.nonzero(gap >= 0)[0])
        if i == 0 or gap[i] == 0:
            return float(self.far[i])
        w = float(-gap[i - 1] / (gap[i] - gap[i - 1]))
        return float((1 - w) * self.far[i - 1] + w * self.far[i])


def _check(distances: torch.Tensor, same: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    distances = distances.detach().double().flatten()
    same = same.detach().flatten().bool()
    if distances.shape != same.shape:
        raise DataError(f"{distances.numel()} distances but {same.numel()} pair labels")
    if not torch.isfinite(distances).all():
        raise DataError("distances contain NaN or inf")
    n_genuine = int(same.sum())
    if n_genuine == 0 or n_genuine == same.numel():
        raise DataError("verification needs both genuine (same = 1) and impostor (same = 0) pairs")
    return distances, same


def roc_curve(distances: torch.Tensor, same: torch.Tensor) -> RocCurve:
    """The ROC curve, one point per distinct distance (ties move together)."""
    distances, same = _check(distances, same)
    order = torch.argsort(distances, stable=True)
    d, s = distances[order], same[order].double()
    genuine = torch.cumsum(s, 0)
    impostor = torch.cumsum(1 - s, 0)
    # The last index of each run of equal distances is where that threshold's counts end.
    last = torch.ones_like(d, dtype=torch.bool)
    last[:-1] = d[1:] != d[:-1]
    zero = torch.zeros(1, dtype=torch.float64)
    return RocCurve(
        far=torch.cat([zero, impostor[last] / impostor[-1]]),
        tar=torch.cat([zero, genuine[last] / genuine[-1]]),
        thresholds=torch.cat([torch.tensor([float("-inf")], dtype=torch.float64), d[last]]),
    )


def roc_auc(distances: torch.Tensor, same: torch.Tensor) -> float:
    """Area under the ROC curve: the probability that a random impostor pair is farther apart
    than a random genuine pair, ties counting one half (equal to scikit-learn's
    `roc_auc_score(same, -distances)`)."""
    return roc_curve(distances, same).auc()


def eer(distances: torch.Tensor, same: torch.Tensor) -> float:
    """Equal error rate: where the false-accept rate equals the false-reject rate (1 − TAR),
    linearly interpolated between the two ROC points around the crossing."""
    return roc_curve(distances, same).eer()


def accuracy_at_threshold(distances: torch.Tensor, same: torch.Tensor, threshold: float) -> float:
    """Share of pairs classified right when pairs with distance <= `threshold` are accepted."""
    distances, same = _check(distances, same)
    return float(((distances <= threshold) == same).double().mean())


def best_threshold(distances: torch.Tensor, same: torch.Tensor) -> tuple[float, float]:
    """The threshold with the highest accuracy on these pairs, and that accuracy.

    The threshold returned lies halfway between the two distances that bound the best
    interval, so it generalises to new pairs better than an observed distance would.
    """
    curve = roc_curve(distances, same)
    n_genuine = float(same.bool().sum())
    n_impostor = float(same.numel()) - n_genuine
    correct = curve.tar * n_genuine + (1 - curve.far) * n_impostor
    i = int(torch.argmax(correct))
    t = curve.thresholds
    if i == 0:
        threshold = float(t[1]) - 1e-6
    elif i == t.numel() - 1:
        threshold = float(t[i]) + 1e-6
    else:
        threshold = float((t[i] + t[i + 1]) / 2)
    return threshold, float(correct[i] / same.numel())
