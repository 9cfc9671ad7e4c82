"""Scores normalised against a cohort, as speaker verification normalises a test utterance's
scores: a distance means more or less depending on how crowded the probe's neighbourhood is.
A web photo sits far from every enrolled lab photo, the right person included; a stranger's
lab photo sits close to many. Measured against the probe's own cohort, the distance to the
best identity says how much it stands out.

The cohort is the gallery itself: the probe's `COHORT` nearest enrolled identities other than
the candidate being scored. For the best candidate (the one a decision is about) that is the
2nd to the (COHORT + 1)-th nearest, and the score is one of

    "ratio":  s = d₁ / mean(d₂ … d₆)
    "t-norm": s = (d₁ − mean(d₂ … d₆)) / std(d₂ … d₆)

lower is more alike, as with distances; ranking is unchanged (only the best candidate is
decided on). A gallery of fewer than COHORT + 1 identities has no cohort, and decides on
distances.

Why both, and which wins: T-norm is the speaker-verification form; measured here
(`benchmarks/bench_fpir.py`), dividing by the spread of only five distances makes it noisy,
and at the same share of strangers accepted it identifies far fewer enrolled people than raw
distances (Omniglot, glyphs, faces). The ratio keeps what normalisation is for — a scale set
by the probe's own neighbourhood, so that thresholds carry from the calibration's data to the
user's — without the noisy spread: on the faces case it identifies 87 % of the celebrities'
web photos where raw distances reach 73 % (strangers rejected at 95 %, thresholds by
hindsight), and on Omniglot it matches or beats raw distances.

Thresholds on this scale come from the same FPIR rule as distances: from the gallery's own
people left out in turn, or from a model's calibration, where galleries of each size are
simulated (`simulate_normalised_strangers`). Nothing here imports torch.
"""

from __future__ import annotations

import math

import numpy as np

COHORT = 5
"""Identities in a probe's cohort: mean and spread of its 5 nearest others."""
MIN_SPREAD = 1e-6
"""A cohort at distance 0, or whose distances are all equal, has no scale: divide by this
instead (never NaN)."""
NORMALISATIONS = ("none", "ratio", "t-norm")


def normalised_best(nearest: np.ndarray, kind: str = "ratio") -> np.ndarray:
    """The normalised score of each probe's best candidate.

    Args:
        nearest: (P, ≥ COHORT + 1) each probe's smallest distances to distinct identities,
            ascending (inf where fewer identities exist).
        kind: "ratio" or "t-norm".
    Returns:
        (P,) float64 scores; inf where a probe has fewer than COHORT + 1 finite distances.
    """
    nearest = np.asarray(nearest, dtype=np.float64)
    if nearest.ndim != 2 or nearest.shape[1] < COHORT + 1:
        return np.full(nearest.shape[0], math.inf)
    return normalised_against(nearest[:, 0], nearest[:, 1 : COHORT + 1], kind)


def normalised_against(distance: np.ndarray, cohort: np.ndarray, kind: str = "ratio") -> np.ndarray:
    """(P,) scores of distances (P,) against explicit cohorts (P, COHORT) (a genuine probe's
    cohort is its nearest other identities); inf where a cohort is incomplete.

    Raises:
        ValueError: an unknown kind.
    """
    if kind not in NORMALISATIONS[1:]:
        raise ValueError(f"unknown normalisation {kind!r}")
    distance = np.asarray(distance, dtype=np.float64)
    cohort = np.asarray(cohort, dtype=np.float64).reshape(distance.shape[0], -1)[:, :COHORT]
    ok = (
        np.isfinite(cohort).all(axis=1) & np.isfinite(distance)
        if cohort.shape[1] == COHORT
        else np.zeros(distance.shape[0], dtype=bool)
    )
    safe = np.where(np.isfinite(cohort), cohort, 0.0)
    mean = safe.mean(axis=1) if safe.shape[1] else np.zeros(distance.shape[0])
    d = np.where(np.isfinite(distance), distance, 0.0)
    if kind == "ratio":
        score = d / np.maximum(mean, MIN_SPREAD)
    else:
        spread = np.maximum(safe.std(axis=1) if safe.shape[1] else 0.0, MIN_SPREAD)
        score = (d - mean) / spread
    return np.where(ok, score, math.inf)


def simulate_normalised_strangers(
    kept: np.ndarray,
    identities: np.ndarray,
    quantiles: np.ndarray,
    n: int,
    draws: int = 8,
    seed: int = 0,
    kind: str = "ratio",
) -> np.ndarray:
    """The normalised best score of calibration strangers in simulated galleries of `n`
    identities (one example each, drawn at random from the calibration population).

    Given a probe, its distances to n random identities are n independent draws from its own
    distance distribution F_p; their COHORT + 1 smallest are F_p⁻¹ of the smallest uniform
    order statistics, which are drawn exactly (U₍ⱼ₎ = Sⱼ / (S_{COHORT+1} + G), S the running
    sum of unit exponentials, G ~ Gamma(n − COHORT)). F_p⁻¹ reads the probe's kept smallest
    distances where they reach, and its quantiles beyond.

    Args:
        kept: (P, K) each probe's smallest distances to other-class examples, ascending.
        identities: (P,) how many other-class examples each was scored against.
        quantiles: (P, Q) each probe's distance quantiles at levels (1..Q)/(Q+1).
        n: gallery size (>= COHORT + 1).
    Returns:
        (P × draws,) normalised best scores.
    """
    p, k = kept.shape
    q = quantiles.shape[1]
    g = np.random.default_rng(seed)
    m = COHORT + 1
    steps = g.exponential(size=(draws, p, m)).cumsum(axis=2)
    rest = g.gamma(max(n - m, 1e-9) + 1.0, size=(draws, p, 1))  # S_{n+1} − S_m
    u = steps / (steps[:, :, -1:] + rest)  # (draws, P, m) ascending in (0, 1)
    n_p = np.maximum(identities.astype(np.float64), 1.0)[None, :, None]
    index = np.ceil(u * n_p).astype(np.int64) - 1  # the rank among the probe's distances
    rows = np.broadcast_to(np.arange(p)[None, :, None], index.shape)
    inside = index < k
    from_kept = kept[rows, np.clip(index, 0, k - 1)]
    # beyond the kept tail (small galleries only): linear between the probe's quantiles, at
    # levels (j + 1) / (Q + 1), held flat beyond the first and last
    position = u * (q + 1) - 1
    low = np.clip(np.floor(position), 0, q - 1).astype(np.int64)
    high = np.minimum(low + 1, q - 1)
    weight = np.clip(position - low, 0.0, 1.0)
    from_quantiles = quantiles[rows, low] * (1 - weight) + quantiles[rows, high] * weight
    nearest = np.where(inside, from_kept, from_quantiles)
    nearest = np.sort(nearest, axis=2)
    return normalised_best(nearest.reshape(draws * p, m), kind)


__all__ = [
    "COHORT",
    "NORMALISATIONS",
    "normalised_against",
    "normalised_best",
    "simulate_normalised_strangers",
]
