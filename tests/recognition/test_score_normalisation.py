"""Distances normalised against the probe's cohort (its nearest other identities): the scores
against a brute-force float64 loop, and the simulation of a model's galleries against galleries
drawn directly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from siamese.recognition.score_normalisation import (
    COHORT,
    normalised_against,
    normalised_best,
    simulate_normalised_strangers,
)


def _brute(row: list[float], kind: str) -> float:
    finite = [v for v in row[: COHORT + 1] if math.isfinite(v)]
    if len(finite) < COHORT + 1:
        return math.inf
    best, cohort = finite[0], finite[1:]
    mean = sum(cohort) / COHORT
    if kind == "ratio":
        return best / max(mean, 1e-6)
    spread = math.sqrt(sum((c - mean) ** 2 for c in cohort) / COHORT)
    return (best - mean) / max(spread, 1e-6)


@pytest.mark.parametrize("kind", ["ratio", "t-norm"])
def test_scores_are_the_brute_force_ones_and_never_nan(kind: str) -> None:
    g = np.random.default_rng(0)
    nearest = np.sort(g.gamma(3.0, 0.4, size=(50, 8)), axis=1)
    nearest[4, 3:] = np.inf  # a probe of a gallery of 3 identities: no cohort
    nearest[5] = 0.0  # every distance 0: no scale
    got = normalised_best(nearest, kind)
    for row, value in zip(nearest.tolist(), got.tolist(), strict=True):
        expected = _brute(row, kind)
        assert value == pytest.approx(expected, rel=1e-12) or (
            math.isinf(value) and math.isinf(expected)
        )
    assert math.isinf(got[4]) and got[5] == 0.0 and not np.isnan(got).any()
    assert np.isinf(normalised_best(nearest[:, :COHORT], kind)).all()  # too few columns
    cohort = nearest[:, 1 : COHORT + 1]
    np.testing.assert_allclose(normalised_against(nearest[:, 0], cohort, kind), got)
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalised_best(nearest, "z-norm")


@pytest.mark.parametrize("kind", ["ratio", "t-norm"])
@pytest.mark.parametrize("n", [8, 40, 400])
def test_simulated_galleries_match_galleries_drawn_directly(kind: str, n: int) -> None:
    """A probe's distances to n random identities of a large population are n independent
    draws from its own distances: the order-statistics simulation gives the same normalised
    best scores, in distribution, as drawing the n identities."""
    g = np.random.default_rng(1)
    probes, population = 60, 3_000
    rows = np.sort(g.gamma(6.0, 0.2, size=(probes, population)), axis=1)
    kept = rows[:, :256]
    levels = np.arange(1, 64) / 64
    quantiles = np.stack([np.quantile(r, levels) for r in rows])
    simulated = simulate_normalised_strangers(
        kept, np.full(probes, population), quantiles, n, draws=200, seed=2, kind=kind
    )
    direct = []
    for _ in range(200):
        picks = np.sort(np.stack([r[g.integers(population, size=n)] for r in rows]), axis=1)
        direct.append(normalised_best(picks[:, : COHORT + 1], kind))
    direct_scores = np.concatenate(direct)
    # (t-norm's far tail, divided by the spread of five distances, is too heavy for 12,000
    # draws to pin its 1 % point: it is compared from 5 %)
    for q in (0.01, 0.05, 0.1, 0.5, 0.9) if kind == "ratio" else (0.05, 0.1, 0.5, 0.9):
        a, b = np.quantile(simulated, q), np.quantile(direct_scores, q)
        spread = np.quantile(direct_scores, 0.9) - np.quantile(direct_scores, 0.1)
        assert abs(a - b) <= 0.05 * spread, (q, a, b)
