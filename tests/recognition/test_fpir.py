"""The share of strangers a gallery accepts at a threshold (FPIR) and the threshold at a target:
the estimates against brute-force float64 references, and against simulated galleries."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from siamese.errors import ConfigError
from siamese.recognition.decisions import Thresholds, identification_basis
from siamese.recognition.fpir import (
    MIN_STRANGERS_ACCEPTED,
    FpirTable,
    GalleryCalibration,
    PairImpostors,
    StrangerScores,
    fpir_table,
    stranger_scores,
)
from siamese.recognition.gallery_calibration import measure_gallery
from siamese.recognition.thresholds import calibrate


def _population(classes: int, per_class: int, dim: int = 8, seed: int = 0, spread: float = 0.6):
    """Gaussian identities: a centre each, examples around it; some centres crowded together
    (hubs), so that strangers differ in how many identities they resemble."""
    g = np.random.default_rng(seed)
    centres = g.normal(size=(classes, dim))
    centres[: classes // 5] *= 0.4  # a crowded region
    x = np.repeat(centres, per_class, axis=0) + spread * g.normal(size=(classes * per_class, dim))
    y = np.repeat(np.arange(classes), per_class)
    return x.astype(np.float32), y


def _brute_rate(scores: np.ndarray, t: float, n: float) -> float:
    """mean over probes of 1 − (1 − F_p(t))^n, F_p from every finite score (float64)."""
    out = []
    for row in scores:
        finite = row[np.isfinite(row)]
        f = float((finite <= t).sum()) / len(finite)
        out.append(1.0 - (1.0 - f) ** n)
    return float(np.mean(out))


def test_the_per_probe_rate_is_the_brute_force_one_at_every_threshold() -> None:
    g = np.random.default_rng(1)
    scores = g.gamma(4.0, 0.3, size=(40, 25))
    scores[3, 10:] = np.inf  # a probe scored against fewer identities
    strangers = stranger_scores(scores, None, keep=25)
    assert strangers.identities[3] == 10
    for n in (1, 3, 10, 57):
        _values, rate, accepted, _ = strangers.curve(n)
        for t in np.quantile(scores[np.isfinite(scores)], [0.001, 0.02, 0.1, 0.5, 0.9]):
            got, _ = strangers.rate_at(float(t), n)
            assert got == pytest.approx(_brute_rate(scores, float(t), n), abs=1e-12)
        assert np.all(np.diff(rate) >= -1e-15) and rate[-1] == pytest.approx(1.0)
        assert accepted[-1] == 40


def test_own_scores_are_left_out_and_keeping_fewer_scores_only_raises_the_estimate() -> None:
    g = np.random.default_rng(2)
    scores = g.gamma(3.0, 0.3, size=(30, 40))
    own = np.zeros_like(scores, dtype=bool)
    own[np.arange(30), np.arange(30)] = True
    full = stranger_scores(scores, own, keep=40)
    assert (full.identities == 39).all() and np.isinf(full.smallest[:, -1]).all()
    few = stranger_scores(scores, own, keep=4)
    for n in (1, 5, 39, 200):
        for t in (0.2, 0.5, 1.0, 2.0):
            exact, _ = full.rate_at(t, n)
            bound, _ = few.rate_at(t, n)
            assert bound >= exact - 1e-12
            masked = np.where(own, np.inf, scores)
            assert exact == pytest.approx(_brute_rate(masked, t, n), abs=1e-12)


def test_the_threshold_at_a_target_is_the_largest_whose_estimate_stays_within_it() -> None:
    g = np.random.default_rng(3)
    strangers = stranger_scores(g.gamma(4.0, 0.3, size=(500, 60)), None)
    for n in (1, 10, 100):
        for target in (0.01, 0.05, 0.2):
            t, rate, accepted = strangers.threshold_at(target, n)
            assert rate <= target and strangers.rate_at(t, n) == (rate, accepted)
            values, _curve, _, _ = strangers.curve(n)
            above = values[values > t]
            assert above.size == 0 or strangers.rate_at(float(above[0]), n)[0] > target
    # nothing can be accepted: just below the smallest score, an estimate of 0
    t, rate, accepted = strangers.threshold_at(1e-9, 10**6)
    assert t < strangers.smallest.min() and rate == 0.0 and accepted == 0


def test_the_independence_bound_never_accepts_fewer_strangers_than_the_per_probe_estimate() -> None:
    x, y = _population(60, 6)
    d = torch.cdist(torch.from_numpy(x).double(), torch.from_numpy(x).double()).numpy()
    own = y[:, None] == y[None, :]
    strangers = stranger_scores(d, own, keep=d.shape[1])
    impostors = PairImpostors(np.sort(d[np.triu(~own, 1)]))
    for n in (2, 10, 50):
        for t in np.quantile(impostors.sorted_scores, [0.001, 0.01, 0.05]):
            per_probe, _ = strangers.rate_at(float(t), n)
            assert impostors.rate_at(float(t), n) >= per_probe - 1e-9  # Jensen


@pytest.mark.parametrize("target", [0.05, 0.2])
def test_simulated_galleries_accept_strangers_at_the_target(target: float) -> None:
    """The estimate from one calibration population, checked on galleries of N identities
    drawn from a second, independent population of the same kind: the realised share of
    strangers (never in the gallery) accepted is near the target."""
    xc, yc = _population(300, 5, seed=10)
    dc = torch.cdist(torch.from_numpy(xc).double(), torch.from_numpy(xc).double()).numpy()
    strangers = stranger_scores(dc, yc[:, None] == yc[None, :], keep=dc.shape[1])
    x, _y = _population(3_000, 1, seed=11)
    z = torch.from_numpy(x).double()
    g = np.random.default_rng(12)
    for n in (10, 100):
        t, estimate, _ = strangers.threshold_at(target, n)
        accepted = []
        for _ in range(60):
            rows = g.permutation(len(x))
            gallery, probes = rows[:n], rows[n : n + 400]
            best = torch.cdist(z[probes], z[gallery]).min(dim=1).values.numpy()
            accepted.append((best <= t).mean())
        realised = float(np.mean(accepted))
        assert 0.5 * target <= realised <= 1.6 * target, (n, realised, estimate)


def _thresholds(table: FpirTable | None) -> Thresholds:
    return Thresholds(
        metric="euclidean",
        at_far={1e-3: 0.5, 1e-2: 0.8, 1e-1: 1.2},
        unsupported=(),
        eer=0.1,
        eer_threshold=1.0,
        genuine_pairs=100,
        impostor_pairs=100_000,
        calibrated_on="test data",
        classes=50,
        extra={} if table is None else {"fpir": table.as_dict()},
    )


def test_a_models_table_round_trips_and_its_threshold_falls_as_the_gallery_grows() -> None:
    x, y = _population(200, 5, seed=4)
    thresholds = calibrate(torch.from_numpy(x), torch.from_numpy(y), "euclidean", "test", seed=0)
    table = thresholds.fpir_table
    assert table is not None and table.probes == 1000
    again = Thresholds.from_dict(thresholds.as_dict()).fpir_table
    assert again is not None and again.as_dict() == table.as_dict()
    found = [table.threshold(0.1, n) for n in (1, 10, 100, 1_000, 10_000)]
    values = [f[0] for f in found if f is not None]
    assert len(values) >= 3 and all(a > b for a, b in itertools.pairwise(values))
    # a gallery of one identity is a pair: its FPIR threshold is the pair FAR's
    one = table.threshold(0.1, 1)
    assert one is not None and one[0] == pytest.approx(thresholds.at_far[0.1], rel=0.02)
    # between grid points: between their thresholds
    t30 = table.threshold(0.1, 30)
    t20, t50 = table.threshold(0.1, 20), table.threshold(0.1, 50)
    assert t30 is not None and t20 is not None and t50 is not None
    assert t50[0] <= t30[0] <= t20[0]
    assert table.threshold(0.5, 10) is None  # beyond the grid's targets


def test_the_rule_prefers_the_gallerys_own_estimate_once_it_supports_the_target() -> None:
    x, y = _population(200, 5, seed=5)
    thresholds = calibrate(torch.from_numpy(x), torch.from_numpy(y), "euclidean", "test", seed=0)
    model = identification_basis("fpir", 0.1, 30, 30, "nearest", thresholds, None, 7)
    assert model.rule == "fpir" and model.generation == 7 and "model's calibration" in model.basis
    table = thresholds.fpir_table
    assert table is not None
    exact = table.threshold(0.1, 30)
    assert exact is not None and model.threshold == pytest.approx(exact[0], rel=1e-9)
    assert model.estimated_fpir is not None and model.estimated_fpir <= 0.1 * 1.5
    # nearest scoring: identities of 3 examples each give strangers 3 chances each
    three = identification_basis("fpir", 0.1, 30, 90, "nearest", thresholds, None, 7)
    assert three.threshold < model.threshold
    centroid = identification_basis("fpir", 0.1, 30, 90, "centroid", thresholds, None, 7)
    assert centroid.threshold == pytest.approx(model.threshold)
    # a gallery of 80 identities of its own, left out in turn: supported at 10 %
    xg, yg = _population(80, 1, seed=6)
    own = measure_gallery(xg, yg, "euclidean", "nearest", generation=3)
    assert own.strangers.probes == 80
    decided = identification_basis("fpir", 0.1, 80, 80, "nearest", thresholds, own, 8)
    # pooled: the gallery's 80 strangers against the model's, which count as the 50 the
    # gallery would need to support 10 % alone
    assert "own 80 identities" in decided.basis and "weight 62%" in decided.basis
    table = thresholds.fpir_table
    assert table is not None
    own_rate, _ = own.strangers.rate_at(decided.threshold, 80)
    model_rate = table.rate_at(decided.threshold, 80)
    assert model_rate is not None
    pooled = (80 * own_rate + 50 * model_rate) / 130
    assert decided.estimated_fpir == pytest.approx(pooled, rel=1e-6) and pooled <= 0.1
    # ... and it is the largest such threshold: the next own score beyond it exceeds it
    values, _, _, _ = own.strangers.curve(80)
    t = float(values[values > decided.threshold][0])
    assert (80 * own.strangers.rate_at(t, 80)[0] + 50 * table.rate_at(t, 80)) / 130 > 0.1
    # 1 %: 80 identities are far from the 500 it needs alone; the model weighs 86 %
    assert 80 * 0.01 < MIN_STRANGERS_ACCEPTED
    fallback = identification_basis("fpir", 0.01, 80, 80, "nearest", thresholds, own, 8)
    assert "weight 14%" in fallback.basis and "alone from about 500 identities" in fallback.basis
    # the pair rule: the model's pair threshold, its FPIR estimated
    far = identification_basis("far", 0.01, 80, 80, "nearest", thresholds, own, 8)
    assert far.threshold == thresholds.at_far[0.01] and far.estimated_fpir is not None
    with pytest.raises(ConfigError, match=r"in \(0, 1\)"):
        identification_basis("fpir", 1.5, 80, 80, "nearest", thresholds, None, 0)
    with pytest.raises(ConfigError, match="unknown gallery rule"):
        identification_basis("best", 0.1, 80, 80, "nearest", thresholds, None, 0)


def test_without_a_table_the_rule_falls_back_to_the_pair_thresholds_as_a_bound() -> None:
    thresholds = _thresholds(None)
    # 10 identities at FPIR 1 %: a pair rate of 1e-3 (1 − 0.99^(1/10) ≈ 1.005e-3)
    decided = identification_basis("fpir", 0.01, 10, 10, "nearest", thresholds, None, 0)
    assert decided.threshold == 0.5 and decided.far == 1e-3
    assert decided.estimated_fpir == pytest.approx(1 - (1 - 1e-3) ** 10)
    with pytest.raises(ConfigError, match=r"supports rates down to 0\.001"):
        identification_basis("fpir", 0.01, 1_000, 1_000, "nearest", thresholds, None, 0)


@pytest.mark.parametrize("scoring", ["nearest", "centroid"])
def test_the_gallerys_own_calibration_is_the_brute_force_leave_one_identity_out(
    scoring: str,
) -> None:
    g = np.random.default_rng(7)
    x = g.normal(size=(23, 5)).astype(np.float32)
    owners = np.asarray([10, 10, 10, 11, 12, 12, 13, 14, 14, 14, 14, 15, 16, 17, 17, 18, 19,
                         20, 21, 21, 22, 23, 24])  # fmt: skip
    own = measure_gallery(x, owners, "euclidean", scoring, generation=5)
    ids = np.unique(owners)
    xd = x.astype(np.float64)

    def score(probe: int, identity: int, leave: int | None = None) -> float:
        rows = [r for r in np.flatnonzero(owners == identity) if r != leave]
        if not rows:
            return math.inf
        if scoring == "centroid":
            return float(np.linalg.norm(xd[probe] - xd[rows].mean(axis=0)))
        return float(min(np.linalg.norm(xd[probe] - xd[r]) for r in rows))

    expected = np.asarray(
        [[score(p, i) if i != owners[p] else math.inf for i in ids] for p in range(len(x))]
    )
    reference = stranger_scores(expected, None)
    np.testing.assert_allclose(own.strangers.smallest, reference.smallest, rtol=1e-5)
    np.testing.assert_array_equal(own.strangers.identities, np.full(len(x), ids.size - 1))
    multi = [p for p in range(len(x)) if (owners == owners[p]).sum() >= 2]
    np.testing.assert_allclose(
        own.genuine, [score(p, owners[p], leave=p) for p in multi], rtol=1e-5
    )
    np.testing.assert_allclose(own.genuine_rival, expected[multi].min(axis=1), rtol=1e-5)
    distances = [
        np.linalg.norm(xd[a] - xd[b])
        for a in range(len(x))
        for b in range(len(x))
        if owners[a] != owners[b]
    ]
    assert own.impostor_pairs == len(distances)
    assert own.impostor_mean == pytest.approx(np.mean(distances), rel=1e-6)
    assert own.impostor_std == pytest.approx(np.std(distances), rel=1e-5)
    back = GalleryCalibration.from_dict(own.as_dict())
    np.testing.assert_allclose(back.strangers.smallest, own.strangers.smallest, rtol=1e-5)
    t = float(np.median(own.genuine))
    hits = (own.genuine <= t) & (own.genuine < own.genuine_rival)
    assert own.identification_rate(t) == pytest.approx(hits.mean())


def test_zero_distances_and_a_single_identity_give_numbers_not_nan() -> None:
    x = np.zeros((4, 3), np.float32)  # every embedding the same: all distances 0
    own = measure_gallery(x, np.asarray([1, 1, 2, 3]), "euclidean", "nearest", generation=1)
    rate, accepted = own.strangers.rate_at(0.0, 3)
    assert rate == pytest.approx(1.0) and accepted == 4
    assert own.identification_rate(0.0) == 0.0  # ties with a rival are not identified
    lone = measure_gallery(x[:2], np.asarray([1, 1]), "euclidean", "nearest", generation=1)
    assert lone.strangers.probes == 0 and lone.strangers.rate_at(1.0, 1) == (0.0, 0)
    empty = StrangerScores(np.empty((0, 0)), np.empty(0, np.int64))
    assert empty.threshold_at(0.01, 10)[0] == math.inf
    table = fpir_table(empty, PairImpostors(np.empty(0)))
    assert all(m == "" for row in table.methods for m in row)
