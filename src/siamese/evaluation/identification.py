"""Open-set identification, as NIST FRVT measures it: enroll some identities, probe with images
of enrolled people (mated probes) and of people never enrolled (non-mated probes).

One trial: half of the identities (those with more than `shots` examples) are enrolled with
`shots` random examples each; the rest of their examples are mated probes; every example of the
other identities is a non-mated probe. Each probe's score against an identity is its distance
to that identity's nearest enrolled example.

- rank-1 accuracy: mated probes whose nearest identity is their own (closed-set).
- FPIR(t): non-mated probes whose best score is within t (a stranger taken for someone).
- FNIR(t): mated probes not identified at t (wrong best identity, or best score beyond t).
- FNIR at FPIR = p: at the largest threshold whose FPIR <= p, measured where the trial has
  enough non-mated probes (p × non-mated >= 1; otherwise None).
- DIR and FPIR at given thresholds (the model's, calibrated on other classes): the share of
  mated probes identified and accepted, and of strangers accepted.

Trials are repeated over random enrollments and reported as mean ± std.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from siamese.distances import Metric, distance_blocks
from siamese.errors import DataError

FPIRS = (0.01, 0.1)


@dataclass(frozen=True)
class Trial:
    """One enrollment's probes: best identity and score of each probe.

    Attributes:
        mated_correct: (P,) bool, the mated probe's best identity is its own.
        mated_best: (P,) float32 best score of each mated probe.
        non_mated_best: (Q,) float32 best score of each non-mated probe.
        enrolled: identities enrolled.
    """

    mated_correct: torch.Tensor
    mated_best: torch.Tensor
    non_mated_best: torch.Tensor
    enrolled: int


def best_identities(
    probes: torch.Tensor,
    gallery: torch.Tensor,
    gallery_labels: torch.Tensor,
    metric: Metric | str = "euclidean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each probe's nearest identity, scored by the identity's nearest gallery example.

    Args:
        probes: (Q, D) embeddings; gallery: (G, D) enrolled embeddings, G >= 1;
        gallery_labels: (G,) int64 identity of each.
    Returns:
        (identity (Q,) int64, score (Q,) float32).
    """
    identities, position = torch.unique(gallery_labels, return_inverse=True)
    labels_out = torch.empty(probes.shape[0], dtype=torch.long)
    scores = torch.empty(probes.shape[0], dtype=torch.float32)
    rows = max(1, min(1024, (1 << 24) // max(1, gallery.shape[0])))
    for start, block in distance_blocks(probes, gallery, metric, block_rows=rows):
        per_identity = torch.full((block.shape[0], identities.numel()), math.inf)
        per_identity.scatter_reduce_(1, position.expand(block.shape[0], -1), block, "amin")
        best, where = per_identity.min(dim=1)
        labels_out[start : start + block.shape[0]] = identities[where]
        scores[start : start + block.shape[0]] = best
        del block
    return labels_out, scores


def enrollment_trial(
    z: torch.Tensor, y: torch.Tensor, shots: int, generator: torch.Generator, metric: str
) -> Trial:
    """One random enrollment of half the eligible identities with `shots` examples each.

    Raises:
        DataError: fewer than 2 identities with more than `shots` examples, or nobody left
            to be a stranger.
    """
    classes, counts = torch.unique(y, return_counts=True)
    eligible = classes[counts > shots]
    if eligible.numel() < 2:
        raise DataError(
            f"{shots}-shot open-set identification needs at least 2 identities with more than "
            f"{shots} examples; this data has {eligible.numel()}"
        )
    chosen = eligible[torch.randperm(eligible.numel(), generator=generator)]
    enrolled = chosen[: eligible.numel() // 2]
    if enrolled.numel() == classes.numel():
        raise DataError("open-set identification needs identities left out of the gallery")
    is_enrolled = torch.isin(y, enrolled)
    # Per enrolled identity, `shots` random examples: order the enrolled examples by
    # (identity, random key) and take the first `shots` of each identity's block.
    index = torch.nonzero(is_enrolled).flatten()
    key = torch.rand(index.numel(), generator=generator, dtype=torch.float64)
    order = index[torch.argsort(key)]
    order = order[torch.argsort(y[order], stable=True)]
    labels = y[order]
    first = torch.ones_like(labels, dtype=torch.bool)
    first[1:] = labels[1:] != labels[:-1]
    starts = torch.cumsum(first.long(), 0) - 1  # block number of each position
    block_start = torch.nonzero(first).flatten()
    rank = torch.arange(labels.numel()) - block_start[starts]
    gallery_index = order[rank < shots]
    mated_index = order[rank >= shots]
    non_mated_index = torch.nonzero(~is_enrolled).flatten()
    gallery_labels = y[gallery_index]
    g = z[gallery_index]
    mated_label, mated_best = best_identities(z[mated_index], g, gallery_labels, metric)
    _, non_mated_best = best_identities(z[non_mated_index], g, gallery_labels, metric)
    return Trial(
        mated_correct=mated_label == y[mated_index],
        mated_best=mated_best,
        non_mated_best=non_mated_best,
        enrolled=int(enrolled.numel()),
    )


def threshold_at_fpir(non_mated_best: torch.Tensor, fpir: float) -> float | None:
    """The largest threshold at which at most `fpir` of the non-mated probes are accepted
    (score <= threshold): halfway to the next non-mated score; None when the trial has too
    few non-mated probes to measure that rate (fpir × count < 1)."""
    d = torch.sort(non_mated_best.double()).values
    n = d.numel()
    allowed = math.floor(fpir * n + 1e-9)
    if fpir * n < 1:
        return None
    if allowed >= n:
        return float(d[-1])
    # The largest distinct score v with count(d <= v) <= allowed, then halfway to the next.
    nxt = float(d[allowed])  # the first score that must stay rejected
    below = d[d < nxt]
    if below.numel() == 0:
        return float(torch.nextafter(torch.tensor(nxt), torch.tensor(-math.inf)))
    return (float(below[-1]) + nxt) / 2


def fnir(trial: Trial, threshold: float) -> float:
    """Mated probes not identified at `threshold` (wrong identity or score beyond it)."""
    hit = trial.mated_correct & (trial.mated_best <= threshold)
    return 1.0 - float(hit.double().mean())


def fpir(trial: Trial, threshold: float) -> float:
    """Non-mated probes accepted at `threshold`."""
    return float((trial.non_mated_best <= threshold).double().mean())


def _mean_std(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    t = torch.tensor(values, dtype=torch.float64)
    return {"mean": float(t.mean()), "std": float(t.std(correction=0)), "trials": len(values)}


def open_set_identification(
    z: torch.Tensor,
    y: torch.Tensor,
    shots: int = 1,
    trials: int = 10,
    seed: int = 0,
    metric: str = "euclidean",
    fpirs: tuple[float, ...] = FPIRS,
    thresholds: dict[float, float] | None = None,
) -> dict[str, object]:
    """Open-set identification over `trials` random enrollments.

    Args:
        z: (N, D) embeddings of identities the model did not train on; y: (N,) labels.
        shots: enrolled examples per identity.
        thresholds: FAR → threshold calibrated on other classes; DIR and FPIR are measured
            at each.
    Returns:
        {"shots", "trials", "enrolled", "mated_probes", "non_mated_probes", "rank1",
        "fnir_at_fpir": {p: mean/std or None}, "at_threshold": {far: {"threshold", "dir",
        "fpir"}}}; rates as mean ± std over the trials.
    """
    g = torch.Generator().manual_seed(seed)
    rank1: list[float] = []
    at_fpir: dict[float, list[float]] = {p: [] for p in fpirs}
    at_t: dict[float, dict[str, list[float]]] = {
        far: {"dir": [], "fpir": []} for far in (thresholds or {})
    }
    sizes = []
    for _ in range(trials):
        trial = enrollment_trial(z, y, shots, g, metric)
        sizes.append((trial.enrolled, trial.mated_best.numel(), trial.non_mated_best.numel()))
        if trial.mated_best.numel():
            rank1.append(float(trial.mated_correct.double().mean()))
        for p in fpirs:
            t = threshold_at_fpir(trial.non_mated_best, p)
            if t is not None and trial.mated_best.numel():
                at_fpir[p].append(fnir(trial, t))
        for far, t in (thresholds or {}).items():
            at_t[far]["dir"].append(1.0 - fnir(trial, t))
            at_t[far]["fpir"].append(fpir(trial, t))
    enrolled, mated, non_mated = sizes[0]
    return {
        "shots": shots,
        "trials": trials,
        "enrolled": enrolled,
        "mated_probes": mated,
        "non_mated_probes": non_mated,
        "rank1": _mean_std(rank1),
        "fnir_at_fpir": {f"{p:g}": _mean_std(v) for p, v in at_fpir.items()},
        "at_threshold": {
            f"{far:g}": {
                "threshold": (thresholds or {})[far],
                "dir": _mean_std(v["dir"]),
                "fpir": _mean_std(v["fpir"]),
            }
            for far, v in at_t.items()
        },
    }
