"""Verification metrics: is a pair the same class or not?

Every function takes `distances` (P,) — lower means more similar — and `same` (P,), the pair
labels with 1 = same class (genuine) and 0 = different class (impostor). A pair is accepted
as genuine when its distance is <= the threshold. Pairs come from an explicit list or from
`labelled_pairs` (every pair of a labelled set, or a seeded balanced sample of them).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Protocol

import torch

from siamese.distances import Metric, paired_distances
from siamese.errors import ConfigError, DataError


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

    def threshold_at_far(self, far: float, dtype: torch.dtype = torch.float64) -> float:
        """The threshold keeping the false-accept rate <= `far` on the curve's pairs (see the
        module's `threshold_at_far`), as a value of `dtype` (the pairs' distances' own, so
        that `distances <= threshold` there gives these rates). One curve serves every rate:
        calibration asks for many, and the curve is a sort of every pair."""
        i = _index_at_far(self, far)
        t = self.thresholds.to(dtype)
        if i == 0:
            return float(torch.nextafter(t[1], t.new_tensor(-math.inf)))
        if i == t.numel() - 1:
            return float(t[i])
        middle = ((self.thresholds[i] + self.thresholds[i + 1]) / 2).to(dtype)
        return float(middle if middle < t[i + 1] else t[i])


def _check(distances: torch.Tensor, same: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Pairs' dissimilarities are computed where the embeddings are (a GPU); the curve over
    # them is a sort of P numbers, done on the CPU in float64 (which MPS lacks).
    distances = distances.detach().cpu().double().flatten()
    same = same.detach().cpu().flatten().bool()
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


def _check_far(far: float) -> None:
    if not 0.0 <= far <= 1.0 or math.isnan(far):
        raise ConfigError(f"a false-accept rate must lie in [0, 1], got {far}; e.g. use 1e-3")


def _index_at_far(curve: RocCurve, far: float) -> int:
    """Index of the largest threshold whose FAR is <= `far` (FAR never falls as it grows)."""
    _check_far(far)
    # Rates are counts / n_impostor in float64; the slack keeps far = k / n_impostor exact.
    return int(torch.nonzero(curve.far <= far + 1e-12)[-1])


def tar_at_far(distances: torch.Tensor, same: torch.Tensor, far: float) -> float:
    """True-accept rate at the largest threshold whose false-accept rate is <= `far`.

    Thresholds are the observed distances (ties move together), so the FAR reached is the
    largest achievable one not above `far`. When `far` is below 1 / n_impostor (e.g. 1e-3 with
    500 impostor pairs) no impostor may be accepted, and the result is the TAR at FAR 0: the
    share of genuine pairs closer than the closest impostor pair.

    Args:
        distances: (P,) pair distances; same: (P,) 1 = genuine, 0 = impostor.
        far: target false-accept rate in [0, 1].
    Returns:
        TAR in [0, 1].
    """
    curve = roc_curve(distances, same)
    return float(curve.tar[_index_at_far(curve, far)])


def threshold_at_far(distances: torch.Tensor, same: torch.Tensor, far: float) -> float:
    """Calibration: the distance threshold that keeps the false-accept rate <= `far`.

    On these pairs, accepting `distance <= threshold` accepts at most `far` of the impostors
    and exactly the `tar_at_far(distances, same, far)` share of the genuine pairs. The value
    lies halfway between the largest accepted distance and the next observed distance (just
    below the smallest distance when nothing can be accepted; the largest distance when
    everything can), so it generalises to new pairs better than an observed distance.

    Args:
        distances: (P,) pair distances of calibration pairs; same: (P,) 1 = genuine,
            0 = impostor.
        far: target false-accept rate in [0, 1].
    Returns:
        The threshold, in the units of `distances`.
    """
    # Work in the caller's precision so that `distances <= threshold` there gives these rates.
    dtype = distances.dtype if distances.is_floating_point() else torch.float64
    return roc_curve(distances, same).threshold_at_far(far, dtype)


def ten_fold_accuracy(
    distances: torch.Tensor, same: torch.Tensor, folds: int = 10, seed: int = 0
) -> tuple[float, float]:
    """Cross-validated accuracy: for each fold, the threshold with the best accuracy on the
    other folds is applied to the held-out fold (LFW's procedure, but over folds of pairs:
    the folds may share identities, which LFW's do not, so it is not the LFW protocol).

    Folds are stratified (genuine and impostor pairs are each shuffled with `seed` and dealt
    round-robin), so every fold holds both kinds when each kind has >= `folds` pairs.

    Args:
        distances: (P,) pair distances; same: (P,) 1 = genuine, 0 = impostor.
        folds: number of folds (>= 2).
        seed: random seed of the fold assignment.
    Returns:
        (mean, std) of the held-out fold accuracies; std is the population standard deviation
        over folds (as in the LFW reference code), 0 when all folds agree.
    """
    distances, same = _check(distances, same)
    if folds < 2:
        raise ConfigError(f"cross-validation needs folds >= 2, got {folds}")
    n_genuine = int(same.sum())
    n_impostor = same.numel() - n_genuine
    if min(n_genuine, n_impostor) < folds:
        raise DataError(
            f"{folds}-fold accuracy needs at least {folds} genuine and {folds} impostor pairs; "
            f"got {n_genuine} and {n_impostor}: use more pairs or fewer folds"
        )
    g = torch.Generator().manual_seed(seed)
    fold = torch.empty(same.numel(), dtype=torch.long)
    for kind in (same, ~same):
        members = torch.nonzero(kind).flatten()
        members = members[torch.randperm(members.numel(), generator=g)]
        fold[members] = torch.arange(members.numel()) % folds
    accuracies = torch.empty(folds, dtype=torch.float64)
    for k in range(folds):
        test = fold == k
        threshold, _ = best_threshold(distances[~test], same[~test])
        accuracies[k] = ((distances[test] <= threshold) == same[test]).double().mean()
    return float(accuracies.mean()), float(accuracies.std(correction=0))


class PairHead(Protocol):
    """A trained pair classifier (e.g. `PairClassifierLoss`): logits of "same class"."""

    def logits(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor: ...


def pair_dissimilarity(
    z1: torch.Tensor,
    z2: torch.Tensor,
    metric: Metric | str = "euclidean",
    head: PairHead | None = None,
) -> torch.Tensor:
    """How unalike each pair is, lower meaning more alike, as every verification metric here
    reads it: the distance between the embeddings, or for a run that trained a pair
    classifier, 1 − p(same) = σ(−logit) from its head (the score it was trained to give).

    Args:
        z1, z2: (P, D) embeddings of the pairs' two sides.
        metric: the distance, when there is no head.
        head: the run's pair classifier, or None.
    Returns:
        (P,) float32 (distances) or float32 in (0, 1) (head).
    """
    if head is None:
        return paired_distances(z1, z2, metric)
    with torch.no_grad():
        return torch.sigmoid(-head.logits(z1, z2)).float()


_ENUMERATE_GENUINE_MAX = 4_000_000
"""Genuine pairs up to this many are listed and drawn without replacement; beyond, drawn
with replacement (repeats are then rare)."""


def labelled_pairs(
    labels: torch.Tensor, max_pairs: int = 200_000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Balanced verification pairs of a labelled set: the one way `siamese` draws the pairs
    it verifies, in training-time validation and in `evaluate` alike.

    As many impostor pairs as genuine ones. Genuine pairs are drawn uniformly among all
    same-class pairs i < j, without replacement (so a small set gives every genuine pair
    once): min(max_pairs // 2, all of them). Impostor pairs pick a pair of different classes
    uniformly among the class pairs, then one example of each uniformly, without repeating a
    pair while unused ones remain; when the set has fewer impostor pairs than genuine ones,
    genuine pairs are dropped to match. The order is genuine first, then impostor.

    Args:
        labels: (N,) int64 labels.
        max_pairs: largest number of pairs returned (>= 2).
        seed: random seed.
    Returns:
        (i, j, same): (P,) int64 indices with i < j, and (P,) int64 pair labels,
        1 = genuine, 0 = impostor; P is even.
    Raises:
        DataError: fewer than 2 classes, or no class with 2 examples.
    """
    labels = labels.detach().cpu().flatten()
    n = labels.numel()
    if max_pairs < 2:
        raise ConfigError(f"max_pairs must be >= 2, got {max_pairs}")
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    if counts.numel() < 2 or int(counts.max()) < 2:
        raise DataError(
            f"verification pairs need at least 2 classes and one class with 2 or more examples; "
            f"these {n} labels have {counts.numel()} classes and at most "
            f"{int(counts.max()) if n else 0} examples per class"
        )
    g = torch.Generator().manual_seed(seed)
    order = torch.argsort(inverse, stable=True)  # class blocks, in class order
    starts = torch.cumsum(counts, 0) - counts
    per_class = counts * (counts - 1) // 2
    n_genuine_all = int(per_class.sum())
    sizes = counts.double()
    n_impostor_all = int((sizes.sum() ** 2 - (sizes**2).sum()) / 2)
    wanted = min(max_pairs // 2, n_genuine_all, n_impostor_all)
    gi, gj = _genuine_pairs(order, starts, counts, per_class, wanted, g)
    ii, ij = _impostor_pairs(order, starts, counts, wanted, n_impostor_all, g)
    i = torch.cat([gi, ii])
    j = torch.cat([gj, ij])
    same = torch.cat([torch.ones(wanted, dtype=torch.long), torch.zeros(wanted, dtype=torch.long)])
    return torch.minimum(i, j), torch.maximum(i, j), same


def _genuine_pairs(
    order: torch.Tensor,
    starts: torch.Tensor,
    counts: torch.Tensor,
    per_class: torch.Tensor,
    wanted: int,
    g: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`wanted` same-class pairs, uniform over all of them (without replacement when they
    can be listed)."""
    total = int(per_class.sum())
    if total <= _ENUMERATE_GENUINE_MAX:
        # Every same-class pair (a, b), a < b within its class block, then a random subset.
        parts_a, parts_b = [], []
        for c in torch.nonzero(counts >= 2).flatten().tolist():
            a, b = torch.triu_indices(int(counts[c]), int(counts[c]), offset=1)
            parts_a.append(order[starts[c] + a])
            parts_b.append(order[starts[c] + b])
        pick = torch.randperm(total, generator=g)[:wanted]
        return torch.cat(parts_a)[pick], torch.cat(parts_b)[pick]
    # A class with probability ∝ its pair count, then two distinct members uniformly.
    c = torch.multinomial(per_class.double(), wanted, replacement=True, generator=g)
    size = counts[c]
    a = (torch.rand(wanted, generator=g, dtype=torch.float64) * size).long()
    b = (torch.rand(wanted, generator=g, dtype=torch.float64) * (size - 1)).long()
    b = b + (b >= a).long()  # skip a itself
    return order[starts[c] + a], order[starts[c] + b]


def _impostor_pairs(
    order: torch.Tensor,
    starts: torch.Tensor,
    counts: torch.Tensor,
    wanted: int,
    available: int,
    g: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`wanted` different-class pairs: a class pair uniformly, then a member of each
    uniformly; repeated pairs are redrawn while unused ones remain."""
    n_classes = counts.numel()
    n = int(counts.sum())
    keys = torch.empty(0, dtype=torch.long)
    unique_possible = min(wanted, available)
    for _ in range(64):  # each round draws the shortfall twice over
        short = unique_possible - keys.numel()
        if short <= 0:
            break
        draw = 2 * short + 16
        c1 = torch.randint(n_classes, (draw,), generator=g)
        c2 = torch.randint(n_classes - 1, (draw,), generator=g)
        c2 = c2 + (c2 >= c1).long()  # a different class, uniform over the others
        a = order[starts[c1] + (torch.rand(draw, generator=g) * counts[c1]).long()]
        b = order[starts[c2] + (torch.rand(draw, generator=g) * counts[c2]).long()]
        fresh = torch.minimum(a, b) * n + torch.maximum(a, b)
        merged = torch.cat([keys, fresh])
        # Keep the first occurrence of each pair, in draw order (so the seed fixes them).
        keys = merged[_first_occurrences(merged).sort().values]
    keys = keys[:wanted]
    if keys.numel() < wanted:  # only possible with repeats: top up with them
        extra = torch.randint(keys.numel(), (wanted - keys.numel(),), generator=g)
        keys = torch.cat([keys, keys[extra]])
    return keys // n, keys % n


def _first_occurrences(values: torch.Tensor) -> torch.Tensor:
    """The index of each distinct value's first occurrence in `values` (1-D)."""
    unique, inverse = torch.unique(values, return_inverse=True)
    first = torch.full((unique.numel(),), values.numel(), dtype=torch.long)
    return first.scatter_reduce_(0, inverse, torch.arange(values.numel()), reduce="amin")


@dataclass
class VerificationReport:
    """Every verification metric of one set of pairs (rates in [0, 1], thresholds in distance
    units).

    Attributes:
        auc: area under the ROC curve. eer: equal error rate.
        tar_at_far_1e1, tar_at_far_1e2, tar_at_far_1e3: TAR at FAR <= 1e-1, 1e-2, 1e-3
            (see `tar_at_far` for FARs below 1 / n_impostor).
        best_accuracy, best_threshold: the best accuracy on these pairs and its threshold.
        ten_fold_mean, ten_fold_std: cross-validated accuracy over `folds` folds of these
            pairs (`ten_fold_accuracy`; folds may share identities).
        n_genuine, n_impostor: pair counts.
    """

    auc: float
    eer: float
    tar_at_far_1e1: float
    tar_at_far_1e2: float
    tar_at_far_1e3: float
    best_accuracy: float
    best_threshold: float
    ten_fold_mean: float
    ten_fold_std: float
    folds: int
    n_genuine: int
    n_impostor: int

    def as_dict(self) -> dict[str, float | int]:
        """The fields by name, for JSON and report tables."""
        return asdict(self)


def verification_metrics(
    distances: torch.Tensor, same: torch.Tensor, seed: int = 0, folds: int = 10
) -> VerificationReport:
    """All verification metrics at once.

    Args:
        distances: (P,) pair distances; same: (P,) 1 = genuine, 0 = impostor.
        seed: random seed of the cross-validation folds.
        folds: folds of the cross-validated accuracy; lowered to the smaller of the genuine and impostor
            counts when there are fewer pairs of either kind (at least 2 of each are needed).
    Returns:
        VerificationReport.

    Example:
        >>> import torch
        >>> from siamese.evaluation.verification import verification_metrics
        >>> distances = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
        >>> same = torch.tensor([1, 1, 1, 0, 1, 0, 0, 0])  # 1 = genuine pair
        >>> report = verification_metrics(distances, same, folds=2)
        >>> round(report.auc, 4), round(report.eer, 4), round(report.tar_at_far_1e1, 4)
        (0.9375, 0.25, 0.75)
        >>> round(report.best_threshold, 4), round(report.best_accuracy, 4)
        (0.35, 0.875)
        >>> report.folds, report.n_genuine, report.n_impostor
        (2, 4, 4)
    """
    curve = roc_curve(distances, same)
    n_genuine = int(same.detach().flatten().bool().sum())
    n_impostor = same.numel() - n_genuine
    folds = min(folds, n_genuine, n_impostor)
    if folds < 2:
        raise DataError(
            f"verification metrics need at least 2 genuine and 2 impostor pairs for "
            f"cross-validation; got {n_genuine} and {n_impostor}: use more pairs"
        )
    threshold, accuracy = best_threshold(distances, same)
    mean, std = ten_fold_accuracy(distances, same, folds, seed)

    def tar(far: float) -> float:
        return float(curve.tar[_index_at_far(curve, far)])

    return VerificationReport(
        auc=curve.auc(),
        eer=curve.eer(),
        tar_at_far_1e1=tar(1e-1),
        tar_at_far_1e2=tar(1e-2),
        tar_at_far_1e3=tar(1e-3),
        best_accuracy=accuracy,
        best_threshold=threshold,
        ten_fold_mean=mean,
        ten_fold_std=std,
        folds=folds,
        n_genuine=n_genuine,
        n_impostor=n_impostor,
    )
