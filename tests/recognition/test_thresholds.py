"""Calibrated thresholds: every pair counted, each threshold checked against a brute-force
count in float64, rates the data cannot support refused with the count they would need."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from siamese.errors import ConfigError, DataError
from siamese.recognition.thresholds import (
    CALIBRATED_FARS,
    MIN_FALSE_ACCEPTS,
    Thresholds,
    calibrate,
    calibration_pairs,
    pair_distances,
    thresholds_from_distances,
)


def test_calibration_pairs_are_every_pair_once_with_its_label() -> None:
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 1, 3])
    i, j, same = calibration_pairs(labels)
    got = {(int(a), int(b)): int(s) for a, b, s in zip(i, j, same, strict=True)}
    expected = {(a, b): int(labels[a] == labels[b]) for a, b in itertools.combinations(range(8), 2)}
    assert got == expected and len(i) == len(expected)


def test_calibration_pairs_of_a_large_set_are_a_uniform_subset_of_each_kind() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 50, (3000,), generator=g)
    i, j, same = calibration_pairs(labels, max_pairs=20_000, seed=3)
    assert int(same.sum()) == 20_000 and int((same == 0).sum()) == 20_000
    assert bool((i < j).all())
    assert torch.equal((labels[i] == labels[j]).long(), same)
    # seeded: the same call gives the same pairs
    i2, j2, _ = calibration_pairs(labels, max_pairs=20_000, seed=3)
    assert torch.equal(i, i2) and torch.equal(j, j2)


def test_calibration_pairs_need_both_kinds() -> None:
    with pytest.raises(DataError, match="genuine and impostor"):
        calibration_pairs(torch.tensor([0, 1, 2, 3]))  # no genuine pair
    with pytest.raises(DataError, match="genuine and impostor"):
        calibration_pairs(torch.tensor([5, 5, 5]))  # no impostor pair


def _brute_force_check(distances: torch.Tensor, same: torch.Tensor, t: Thresholds) -> None:
    d = distances.double().tolist()
    s = same.tolist()
    impostor = sorted(x for x, k in zip(d, s, strict=True) if k == 0)
    n_imp = len(impostor)
    for far, threshold in t.at_far.items():
        accepted = sum(1 for x in impostor if x <= threshold)
        assert accepted / n_imp <= far + 1e-12
        # the largest such threshold: one more distinct impostor distance would exceed far
        above = [x for x in impostor if x > threshold]
        if above:
            more = sum(1 for x in impostor if x <= above[0])
            assert more / n_imp > far
        assert far * n_imp >= MIN_FALSE_ACCEPTS


def test_each_threshold_keeps_its_false_accept_rate_against_a_brute_force_count() -> None:
    g = torch.Generator().manual_seed(1)
    genuine = torch.rand(3000, generator=g) * 0.8
    impostor = 0.5 + torch.rand(40_000, generator=g)
    # quantised distances: ties between impostors, and between genuine and impostor pairs
    distances = torch.cat([genuine, impostor]).mul(50).round().div(50)
    same = torch.cat([torch.ones(3000), torch.zeros(40_000)]).long()
    t = thresholds_from_distances(distances, same, "euclidean", "synthetic", classes=7)
    _brute_force_check(distances, same, t)
    assert set(t.at_far) | set(t.unsupported) == set(CALIBRATED_FARS)
    # 40,000 impostors support f >= 10 / 40,000 = 2.5e-4
    assert min(t.at_far) == 5e-4 and 1e-4 in t.unsupported
    assert t.genuine_pairs == 3000 and t.impostor_pairs == 40_000
    assert 0 <= t.eer <= 1 and t.eer_threshold > 0


def test_threshold_choice_and_the_errors_that_say_what_to_do() -> None:
    g = torch.Generator().manual_seed(2)
    distances = torch.cat([torch.rand(270, generator=g), 0.6 + torch.rand(1500, generator=g)])
    same = torch.cat([torch.ones(270), torch.zeros(1500)]).long()
    t = thresholds_from_distances(distances, same, "cosine", "6 validation people", classes=6)
    # 1,500 impostors: 1e-2 (15 accepts) is supported, 5e-3 (7.5) is not
    assert min(t.at_far) == 1e-2
    value, far = t.threshold()
    assert far == 1e-2 and value == t.at_far[1e-2]
    with pytest.raises(
        ConfigError,
        match=r"0.001 is not supported.*1,500 impostor pairs.*10,000.*siamese calibrate",
    ):
        t.threshold(1e-3)
    with pytest.raises(ConfigError, match="not a calibrated rate; the model has thresholds at"):
        t.threshold(0.02)
    again = Thresholds.from_dict(json.loads(json.dumps(t.as_dict())))
    assert again == t


def test_a_calibration_that_supports_no_rate_says_so() -> None:
    distances = torch.tensor([0.1, 0.2, 0.9, 1.0])
    same = torch.tensor([1, 1, 0, 0])
    t = thresholds_from_distances(distances, same, "euclidean", "four pairs", classes=2)
    assert t.at_far == {}
    with pytest.raises(ConfigError, match="supports no false-accept rate"):
        t.threshold()


def test_calibrate_on_embeddings_with_duplicates_gives_no_nan() -> None:
    z = torch.nn.functional.normalize(torch.randn(6, 4), dim=1).repeat_interleave(20, dim=0)
    labels = torch.arange(6).repeat_interleave(20)  # every genuine pair at distance 0
    t = calibrate(z, labels, "euclidean", "duplicates")
    assert t.eer == 0.0
    assert all(v == v for v in t.at_far.values())  # no NaN
    i, j, same = calibration_pairs(labels)
    d = pair_distances(z, i, j, "euclidean")
    reference = (z[i].double() - z[j].double()).norm(dim=1)
    assert torch.allclose(d.double(), reference, atol=1e-6)
    assert bool((d[same == 1] == 0).all())


def test_the_one_accept_rule() -> None:
    """At the threshold is accepted (calibration counts pairs at or below it); NaN never is."""
    from siamese.recognition.decisions import accepts

    assert accepts(0.5, 0.5) and accepts(0.0, 0.5) and accepts(-1.0, 0.0)
    assert not accepts(0.5000001, 0.5)
    assert not accepts(float("nan"), 0.5) and not accepts(0.1, float("nan"))
    assert accepts(float("inf"), float("inf"))
