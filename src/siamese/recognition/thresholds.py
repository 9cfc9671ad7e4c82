"""Calibrated decision thresholds: the distance below which two examples are called the same
identity, at stated false-accept rates, measured on labelled data the model never trained on.

A threshold at FAR f accepts at most the share f of the impostor pairs of the calibration data.
It is only stated where the data supports it: at least `MIN_FALSE_ACCEPTS` impostor pairs would
be accepted at that rate (f × impostor pairs ≥ 10), so a threshold at 1e-3 needs 10,000
impostor pairs; a rate the data cannot support is listed as such, never extrapolated.

Thresholds live in the model's `model.json` under "thresholds" (`write_thresholds`), written by
`siamese train` from its validation classes and by `siamese calibrate` from the user's data.
`Thresholds` itself (and reading it back) is torch-free, in `siamese.recognition.decisions`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from siamese.atomic_files import write_json_atomic
from siamese.distances import pairwise_distances
from siamese.errors import DataError
from siamese.evaluation.verification import (
    PairHead,
    pair_dissimilarity,
    roc_curve,
)
from siamese.recognition.decisions import (
    CALIBRATED_FARS,
    MIN_FALSE_ACCEPTS,
    Thresholds,
    read_thresholds,
)
from siamese.recognition.fpir import (
    TABLE_KEPT,
    FpirTable,
    PairImpostors,
    StrangerScores,
    fpir_table,
)

MAX_PAIRS = 4_000_000
"""Impostor (and genuine) pairs used at most; beyond it a uniform random subset, seeded."""
MAX_STRANGER_PROBES = 4_000
"""Calibration examples scored as strangers against every other class (`stranger_table`)."""
MAX_STRANGER_REFERENCES = 20_000
"""Examples they are scored against, at most (a seeded uniform subset beyond)."""
QUANTILES = 63
"""Quantiles of each stranger's distances kept for simulating small galleries."""


def calibration_pairs(
    labels: torch.Tensor, max_pairs: int = MAX_PAIRS, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every pair i < j of a labelled set, genuine and impostor (not balanced: a threshold at
    a small FAR needs many impostors), or a seeded uniform subset of `max_pairs` of each kind
    when there are more.

    Args:
        labels: (N,) int64 labels.
    Returns:
        (i, j, same): (P,) int64 indices, i < j, and (P,) int64 pair labels, 1 = genuine,
        0 = impostor.
    Raises:
        DataError: no genuine or no impostor pair.
    """
    labels = labels.detach().cpu().flatten()
    n = labels.numel()
    counts = torch.unique(labels, return_counts=True)[1].double()
    n_genuine = int((counts * (counts - 1) / 2).sum())
    n_impostor = n * (n - 1) // 2 - n_genuine
    if n_genuine == 0 or n_impostor == 0:
        raise DataError(
            f"calibration needs genuine and impostor pairs: these {n} examples of "
            f"{counts.numel()} classes give {n_genuine} genuine and {n_impostor} impostor "
            "pairs; give at least 2 classes, some with 2 or more examples"
        )
    g = torch.Generator().manual_seed(seed)
    if n * (n - 1) // 2 <= 2 * max_pairs:
        i, j = torch.triu_indices(n, n, offset=1)
        same = (labels[i] == labels[j]).long()
        keep = torch.cat(
            [_subset(torch.nonzero(same == s).flatten(), max_pairs, g) for s in (1, 0)]
        )
        return i[keep], j[keep], same[keep]
    # Too many to list: draw example pairs uniformly and keep the first max_pairs of each kind
    # (genuine pairs of a large set are rare, so they are drawn within classes instead).
    order = torch.argsort(labels, stable=True)
    _, inverse, per_class = torch.unique(labels, return_inverse=True, return_counts=True)
    starts = torch.cumsum(per_class, 0) - per_class
    weights = (per_class * (per_class - 1)).double()
    want_g = min(max_pairs, n_genuine)
    c = torch.multinomial(weights, want_g, replacement=True, generator=g)
    a = (torch.rand(want_g, generator=g, dtype=torch.float64) * per_class[c]).long()
    b = (torch.rand(want_g, generator=g, dtype=torch.float64) * (per_class[c] - 1)).long()
    b = b + (b >= a).long()
    gi, gj = order[starts[c] + a], order[starts[c] + b]
    want_i = min(max_pairs, n_impostor)
    ii = torch.empty(0, dtype=torch.long)
    ij = torch.empty(0, dtype=torch.long)
    while ii.numel() < want_i:
        x = torch.randint(n, (2 * want_i,), generator=g)
        y = torch.randint(n, (2 * want_i,), generator=g)
        ok = inverse[x] != inverse[y]
        ii, ij = torch.cat([ii, x[ok]]), torch.cat([ij, y[ok]])
    ii, ij = ii[:want_i], ij[:want_i]
    i = torch.cat([torch.minimum(gi, gj), torch.minimum(ii, ij)])
    j = torch.cat([torch.maximum(gi, gj), torch.maximum(ii, ij)])
    same = torch.cat([torch.ones(want_g, dtype=torch.long), torch.zeros(want_i, dtype=torch.long)])
    return i, j, same


def _subset(index: torch.Tensor, limit: int, g: torch.Generator) -> torch.Tensor:
    if index.numel() <= limit:
        return index
    return index[torch.randperm(index.numel(), generator=g)[:limit]].sort().values


def pair_distances(
    embeddings: torch.Tensor,
    i: torch.Tensor,
    j: torch.Tensor,
    metric: str,
    head: PairHead | None = None,
) -> torch.Tensor:
    """(P,) float32 dissimilarities of rows i and j of (N, D) `embeddings`, a block of pairs
    at a time: distances in `metric`, or 1 − p(same) from a pair classifier's `head`
    (`siamese.evaluation.verification.pair_dissimilarity`)."""
    out = torch.empty(i.numel(), dtype=torch.float32)
    step = 65_536
    for start in range(0, i.numel(), step):
        a, b = embeddings[i[start : start + step]], embeddings[j[start : start + step]]
        out[start : start + a.shape[0]] = pair_dissimilarity(a, b, metric, head)
    return out


def thresholds_from_distances(
    distances: torch.Tensor,
    same: torch.Tensor,
    metric: str,
    calibrated_on: str,
    classes: int,
) -> Thresholds:
    """Thresholds at every supported FAR of `CALIBRATED_FARS`, and at the EER.

    Args:
        distances: (P,) distances of calibration pairs; same: (P,) 1 = genuine, 0 = impostor.
        metric: the scale of `distances` (stored with the thresholds).
        calibrated_on: the data, in words; classes: its number of classes.
    """
    same = same.flatten().long()
    impostors = int((same == 0).sum())
    genuine = int((same == 1).sum())
    curve = roc_curve(distances, same)
    dtype = distances.dtype if distances.is_floating_point() else torch.float64
    at_far, unsupported = {}, []
    for far in sorted(CALIBRATED_FARS):
        if far * impostors >= MIN_FALSE_ACCEPTS:
            at_far[far] = curve.threshold_at_far(far, dtype)
        else:
            unsupported.append(far)
    eer = curve.eer()
    gap = curve.far - (1 - curve.tar)
    k = int(torch.nonzero(gap >= 0)[0])
    eer_threshold = float(curve.thresholds[max(k, 1)])
    return Thresholds(
        metric=metric,
        at_far=at_far,
        unsupported=tuple(unsupported),
        eer=eer,
        eer_threshold=eer_threshold,
        genuine_pairs=genuine,
        impostor_pairs=impostors,
        calibrated_on=calibrated_on,
        classes=classes,
    )


def calibrate(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    metric: str,
    calibrated_on: str,
    head: PairHead | None = None,
    seed: int = 0,
    max_pairs: int = MAX_PAIRS,
) -> Thresholds:
    """Thresholds measured on all pairs (`calibration_pairs`) of labelled embeddings.

    Args:
        embeddings: (N, D) float32 embeddings of classes the model did not train on.
        labels: (N,) int64 labels.
        metric: "euclidean", "sqeuclidean" or "cosine".
        calibrated_on: the data, in words (stored, and quoted by every decision).
        head: a pair classifier's head: thresholds then lie on 1 − p(same) ("pair_head").
    Raises:
        DataError: no genuine or no impostor pair.
    """
    i, j, same = calibration_pairs(labels, max_pairs, seed)
    distances = pair_distances(embeddings, i, j, metric, head)
    classes = int(torch.unique(labels).numel())
    scale = "pair_head" if head is not None else metric
    thresholds = thresholds_from_distances(distances, same, scale, calibrated_on, classes)
    if head is not None:
        return thresholds  # a pair classifier scores pairs: it serves no gallery
    impostors = distances[same == 0].double().numpy()
    table = stranger_table(embeddings, labels, metric, impostors, seed)
    return Thresholds(**{**thresholds.__dict__, "extra": {"fpir": table.as_dict()}})


def stranger_table(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    metric: str,
    impostor_distances: np.ndarray,
    seed: int = 0,
    max_probes: int = MAX_STRANGER_PROBES,
    max_references: int = MAX_STRANGER_REFERENCES,
) -> FpirTable:
    """The model's thresholds by false-positive identification rate for galleries of every
    size (`siamese.recognition.fpir`): each of up to `max_probes` calibration examples is a
    stranger scored against every example of the other classes (each example an identity
    enrolled from one image).

    Args:
        embeddings: (N, D) calibration embeddings; labels: (N,) int64.
        impostor_distances: (P,) the impostor pair distances of the same calibration.
    """
    n = embeddings.shape[0]
    g = torch.Generator().manual_seed(seed + 1)
    probes = torch.randperm(n, generator=g)[:max_probes]
    references = torch.randperm(n, generator=g)[:max_references].sort().values
    keep = min(TABLE_KEPT, references.numel())
    smallest, counts, quantiles = [], [], []
    reference_z, reference_y = embeddings[references], labels[references]
    levels = torch.arange(1, QUANTILES + 1, dtype=torch.float64) / (QUANTILES + 1)
    for start in range(0, probes.numel(), 256):
        rows = probes[start : start + 256]
        d = pairwise_distances(embeddings[rows], reference_z, metric)
        own = labels[rows][:, None] == reference_y[None, :]
        d = d.masked_fill(own, math.inf)
        ordered = d.sort(dim=1).values.double()
        smallest.append(ordered[:, :keep])
        others = (~own).sum(dim=1)
        counts.append(others)
        # each row's quantiles among its finite (other-class) distances
        at = ((levels[None, :] * others[:, None].double()).ceil().long() - 1).clamp_min(0)
        quantiles.append(torch.gather(ordered, 1, at.clamp_max(ordered.shape[1] - 1)))
    strangers = StrangerScores(torch.cat(smallest).numpy(), torch.cat(counts).numpy())
    return fpir_table(
        strangers, PairImpostors(np.sort(impostor_distances)), torch.cat(quantiles).numpy()
    )


def write_thresholds(model_dir: Path | str, thresholds: Thresholds) -> None:
    """Store `thresholds` in `model_dir/model.json` (atomically; the weights are untouched)."""
    from siamese.models.files import read_model_files

    model_dir = Path(model_dir)
    description, _ = read_model_files(model_dir)
    description["thresholds"] = thresholds.as_dict()
    write_json_atomic(model_dir / "model.json", description)


__all__ = [
    "CALIBRATED_FARS",
    "MIN_FALSE_ACCEPTS",
    "Thresholds",
    "calibrate",
    "calibration_pairs",
    "pair_distances",
    "read_thresholds",
    "stranger_table",
    "thresholds_from_distances",
    "write_thresholds",
]
