import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sklearn_roc_curve

from siamese.distances import paired_distances
from siamese.errors import ConfigError, DataError
from siamese.evaluation.verification import (
    VerificationReport,
    accuracy_at_threshold,
    best_threshold,
    eer,
    labelled_pairs,
    roc_auc,
    roc_curve,
    tar_at_far,
    ten_fold_accuracy,
    threshold_at_far,
    verification_metrics,
)


def random_pairs(n: int, ties: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    same = torch.randint(2, (n,), generator=g)
    same[0], same[1] = 0, 1
    d = torch.rand(n, generator=g, dtype=torch.float64) + 0.3 * (1 - same)
    if ties:
        d = (d * 5).round() / 5
    return d, same


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("n", [2, 7, 100, 1000])
def test_auc_equals_scikit_learn(n: int, ties: bool) -> None:
    d, same = random_pairs(n, ties, seed=n)
    assert roc_auc(d, same) == pytest.approx(roc_auc_score(same.numpy(), -d.numpy()), abs=1e-12)


def brute_force_eer(d: torch.Tensor, same: torch.Tensor) -> float:
    """Scan a fine grid of thresholds for the point where FAR crosses FRR."""
    grid = torch.linspace(float(d.min()) - 1e-9, float(d.max()) + 1e-9, 20001, dtype=torch.float64)
    accepted = d.double()[:, None] <= grid[None, :]  # (P, T): every pair at every threshold
    far = accepted[same == 0].double().mean(dim=0)
    frr = 1 - accepted[same == 1].double().mean(dim=0)
    k = int((far - frr).abs().argmin())
    return float((far[k] + frr[k]) / 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eer_matches_brute_force(seed: int) -> None:
    d, same = random_pairs(400, False, seed)
    assert eer(d, same) == pytest.approx(brute_force_eer(d, same), abs=0.01)


def test_perfect_and_inverted_separation() -> None:
    same = torch.tensor([1, 1, 0, 0])
    d = torch.tensor([0.1, 0.2, 0.8, 0.9])
    assert roc_auc(d, same) == 1.0 and eer(d, same) == 0.0
    threshold, acc = best_threshold(d, same)
    assert acc == 1.0 and 0.2 < threshold < 0.8
    assert roc_auc(-d, same) == 0.0 and eer(-d, same) == 1.0


def test_all_equal_distances_are_chance() -> None:
    d, same = torch.zeros(6), torch.tensor([1, 0, 1, 0, 1, 0])
    assert roc_auc(d, same) == 0.5
    assert eer(d, same) == pytest.approx(0.5)


def test_best_threshold_is_the_brute_force_optimum() -> None:
    d, same = random_pairs(300, True, seed=5)
    threshold, acc = best_threshold(d, same)
    candidates = torch.cat([d, d - 1e-6, d + 1e-6])
    brute = max(accuracy_at_threshold(d, same, float(t)) for t in candidates)
    assert acc == pytest.approx(brute)
    assert accuracy_at_threshold(d, same, threshold) == pytest.approx(acc)


def test_roc_curve_is_monotone_from_origin_to_corner() -> None:
    d, same = random_pairs(200, True, seed=3)
    curve = roc_curve(d, same)
    assert curve.far[0] == 0 and curve.tar[0] == 0 and curve.far[-1] == 1 and curve.tar[-1] == 1
    assert (curve.far.diff() >= 0).all() and (curve.tar.diff() >= 0).all()


def test_errors_name_the_problem() -> None:
    with pytest.raises(DataError, match="both genuine"):
        roc_auc(torch.rand(4), torch.ones(4))
    with pytest.raises(DataError, match="3 distances but 4"):
        roc_auc(torch.rand(3), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(DataError, match="NaN"):
        roc_auc(torch.tensor([0.1, float("nan")]), torch.tensor([0, 1]))


@pytest.mark.parametrize("ties", [False, True])
def test_roc_points_equal_scikit_learn(ties: bool) -> None:
    d, same = random_pairs(300, ties, seed=11)
    curve = roc_curve(d, same)
    fpr, tpr, thresholds = sklearn_roc_curve(same.numpy(), -d.numpy(), drop_intermediate=False)
    np.testing.assert_allclose(curve.far.numpy(), fpr, atol=1e-12)
    np.testing.assert_allclose(curve.tar.numpy(), tpr, atol=1e-12)
    np.testing.assert_allclose(curve.thresholds[1:].numpy(), -thresholds[1:], atol=1e-12)


def brute_force_tar_at_far(d: torch.Tensor, same: torch.Tensor, far: float) -> float:
    """Loop over every observed distance (and -inf) as a threshold, in float64."""
    genuine = [x for x, s in zip(d.tolist(), same.tolist(), strict=True) if s == 1]
    impostor = [x for x, s in zip(d.tolist(), same.tolist(), strict=True) if s == 0]
    best = (-math.inf, 0.0)
    for t in [-math.inf, *d.tolist()]:
        rate = sum(x <= t for x in impostor) / len(impostor)
        if rate <= far and t > best[0]:
            best = (t, sum(x <= t for x in genuine) / len(genuine))
    return best[1]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("far", [0.0, 1e-3, 1e-2, 0.05, 1e-1, 0.5, 1.0])
def test_tar_at_far_matches_brute_force(ties: bool, far: float) -> None:
    d, same = random_pairs(400, ties, seed=21)
    assert tar_at_far(d, same, far) == pytest.approx(brute_force_tar_at_far(d, same, far))


def test_tar_at_far_hand_computed() -> None:
    # Sorted: g0.1 g0.2 i0.3 g0.4 i0.5 g0.6 i0.7 i0.8 i0.9 i1.0 — 4 genuine, 6 impostor.
    d = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    same = torch.tensor([1, 1, 0, 1, 0, 1, 0, 0, 0, 0])
    assert tar_at_far(d, same, 0.0) == 0.5  # below 1/6: TAR at FAR 0
    assert tar_at_far(d, same, 1e-3) == 0.5
    assert tar_at_far(d, same, 1 / 6) == 0.75  # exactly one impostor allowed
    assert tar_at_far(d, same, 2 / 6) == 1.0
    assert threshold_at_far(d, same, 0.0) == pytest.approx(0.25)
    assert threshold_at_far(d, same, 1 / 6) == pytest.approx(0.45)
    assert threshold_at_far(d, same, 1.0) == pytest.approx(1.0)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("far", [0.0, 1e-2, 0.1, 0.3, 1.0])
def test_threshold_at_far_calibrates(ties: bool, far: float) -> None:
    d, same = random_pairs(500, ties, seed=8)
    t = threshold_at_far(d, same, far)
    accepted = d <= t
    assert float(accepted[same == 0].double().mean()) <= far
    assert float(accepted[same == 1].double().mean()) == pytest.approx(tar_at_far(d, same, far))


def test_one_curve_gives_every_rate_the_threshold_a_brute_force_scan_gives() -> None:
    # calibration sorts the pairs once and reads every rate off that curve: each threshold
    # accepts at most `far` of the impostors and, scanning the observed distances by hand,
    # exactly as many genuine pairs as the largest admissible observed distance does
    d, same = random_pairs(400, True, seed=3)
    curve = roc_curve(d, same)
    values = sorted(set(d.tolist()))
    pairs = list(zip(d.tolist(), same.tolist(), strict=True))
    impostors, genuine = int((same == 0).sum()), int((same == 1).sum())
    for far in (0.0, 0.004, 0.01, 0.1, 0.5, 1.0):
        t = curve.threshold_at_far(far, d.dtype)
        assert t == threshold_at_far(d, same, far)
        best = -float("inf")
        for v in values:  # the largest observed distance whose FAR is <= far
            if sum(1 for x, s in pairs if x <= v and s == 0) <= (far * impostors + 1e-9):
                best = v
        want = sum(1 for x, s in pairs if x <= best and s == 1)
        accepted = d <= t
        assert int(accepted[same == 1].sum()) == want
        assert int(accepted[same == 0].sum()) <= far * impostors + 1e-9
    assert genuine > 0


def test_threshold_at_far_when_the_closest_pair_is_an_impostor() -> None:
    d, same = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0, 1, 0])
    t = threshold_at_far(d, same, 0.0)
    assert not (d <= t).any() and tar_at_far(d, same, 0.0) == 0.0


def test_threshold_at_far_holds_in_float32_for_adjacent_distances() -> None:
    a = torch.tensor(0.3)
    d = torch.stack([a, torch.nextafter(a, torch.tensor(1.0)), torch.tensor(0.9)])
    same = torch.tensor([1, 0, 0])
    t = threshold_at_far(d, same, 0.0)
    assert (d <= t).tolist() == [True, False, False]


def test_far_out_of_range_is_a_config_error() -> None:
    d, same = random_pairs(20, False, seed=0)
    for far in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="false-accept rate"):
            tar_at_far(d, same, far)


def brute_force_ten_fold(d: torch.Tensor, same: torch.Tensor, fold: list[int], k: int):
    dist, lab = d.tolist(), [bool(x) for x in same.tolist()]
    accs = []
    for f in range(k):
        train = [(dist[i], lab[i]) for i in range(len(fold)) if fold[i] != f]
        test = [(dist[i], lab[i]) for i in range(len(fold)) if fold[i] == f]
        best = None
        for t in [*sorted({x for x, _ in train}), -math.inf]:
            for cand in (t - 1e-7, t + 1e-7):
                acc = sum((x <= cand) == s for x, s in train) / len(train)
                if best is None or acc > best[0]:
                    best = (acc, cand)
        accs.append(sum((x <= best[1]) == s for x, s in test) / len(test))
    return float(np.mean(accs)), float(np.std(accs))


def test_ten_fold_accuracy_matches_a_loop_with_the_same_folds() -> None:
    d, same = random_pairs(200, False, seed=4)
    # Recreate the documented fold assignment: each kind shuffled with the seed, round-robin.
    g = torch.Generator().manual_seed(3)
    fold = [0] * 200
    for kind in (same.bool(), ~same.bool()):
        members = torch.nonzero(kind).flatten()
        members = members[torch.randperm(members.numel(), generator=g)]
        for r, i in enumerate(members.tolist()):
            fold[i] = r % 10
    mean, std = ten_fold_accuracy(d, same, folds=10, seed=3)
    ref_mean, ref_std = brute_force_ten_fold(d, same, fold, 10)
    assert mean == pytest.approx(ref_mean) and std == pytest.approx(ref_std)
    assert ten_fold_accuracy(d, same, seed=3) == (mean, std)
    assert ten_fold_accuracy(d, same, seed=4) != (mean, std)


def test_ten_fold_accuracy_on_separable_pairs_and_errors() -> None:
    same = torch.tensor([1, 0] * 20)
    d = 1.0 - same.double() + 0.01 * torch.arange(40)
    assert ten_fold_accuracy(d, same) == (1.0, 0.0)
    with pytest.raises(DataError, match="at least 10 genuine"):
        ten_fold_accuracy(d[:12], same[:12])
    with pytest.raises(ConfigError, match="folds"):
        ten_fold_accuracy(d, same, folds=1)


def test_labelled_pairs_are_balanced_with_every_genuine_pair_of_a_small_set() -> None:
    labels = torch.arange(10).repeat_interleave(10)  # 10 people x 10 photos, as ORL's test
    i, j, same = labelled_pairs(labels)
    assert (i < j).all() and torch.equal(same, (labels[i] == labels[j]).long())
    assert int(same.sum()) == 450 and int((same == 0).sum()) == 450  # not 4,500 impostors
    genuine = set(zip(i[same == 1].tolist(), j[same == 1].tolist(), strict=True))
    assert genuine == {
        (a, b) for a, b in itertools.combinations(range(100), 2) if labels[a] == labels[b]
    }
    assert len(set(zip(i.tolist(), j.tolist(), strict=True))) == 900  # no pair twice


def test_labelled_pairs_draw_impostors_uniformly_over_class_pairs() -> None:
    labels = torch.cat([torch.full((20,), 0), torch.full((20,), 1), torch.full((200,), 2)])
    i, j, same = labelled_pairs(labels, max_pairs=2000, seed=1)
    impostor = same == 0
    pairs = torch.stack([labels[i[impostor]], labels[j[impostor]]]).sort(dim=0).values
    shares = [
        float(((pairs[0] == a) & (pairs[1] == b)).double().mean())
        for a, b in ((0, 1), (0, 2), (1, 2))
    ]
    # Uniform over the 3 class pairs; uniform over example pairs would give class pair
    # (0, 1) 400 / 8,400 of them.
    assert all(0.25 < share < 0.42 for share in shares), shares


def test_labelled_pairs_samples_when_many() -> None:
    labels = torch.arange(20).repeat_interleave(10)  # 19,900 pairs
    i, j, same = labelled_pairs(labels, max_pairs=1000, seed=5)
    assert i.numel() == 1000 and (i < j).all()
    assert torch.equal(same, (labels[i] == labels[j]).long())
    assert int(same.sum()) == 500 and len(set(zip(i.tolist(), j.tolist(), strict=True))) == 1000
    again = labelled_pairs(labels, max_pairs=1000, seed=5)
    assert torch.equal(again[0], i) and torch.equal(again[1], j)
    assert not torch.equal(labelled_pairs(labels, max_pairs=1000, seed=6)[0], i)


def test_labelled_pairs_errors() -> None:
    with pytest.raises(DataError, match="2 classes"):
        labelled_pairs(torch.zeros(5, dtype=torch.long))
    with pytest.raises(DataError, match="2 classes"):
        labelled_pairs(torch.arange(5))


def test_verification_metrics_agree_with_the_single_functions() -> None:
    d, same = random_pairs(3000, True, seed=9)
    report = verification_metrics(d, same, seed=2)
    assert isinstance(report, VerificationReport)
    assert report.auc == pytest.approx(roc_auc_score(same.numpy(), -d.numpy()), abs=1e-12)
    assert report.eer == eer(d, same)
    assert report.tar_at_far_1e1 == tar_at_far(d, same, 1e-1)
    assert report.tar_at_far_1e2 == tar_at_far(d, same, 1e-2)
    assert report.tar_at_far_1e3 == tar_at_far(d, same, 1e-3)
    assert (report.best_threshold, report.best_accuracy) == best_threshold(d, same)
    assert (report.ten_fold_mean, report.ten_fold_std) == ten_fold_accuracy(d, same, 10, 2)
    assert report.n_genuine == int(same.sum()) and report.n_impostor == 3000 - report.n_genuine
    values = report.as_dict()
    assert values["folds"] == 10 and all(not math.isnan(float(v)) for v in values.values())


def test_verification_metrics_on_few_pairs_lowers_the_folds() -> None:
    d, same = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5]), torch.tensor([1, 0, 1, 0, 0])
    report = verification_metrics(d, same)
    assert report.folds == 2 and report.n_genuine == 2 and report.n_impostor == 3
    with pytest.raises(DataError, match="both genuine"):
        verification_metrics(d, torch.ones(5))
    with pytest.raises(DataError):
        verification_metrics(d[:3], torch.tensor([1, 0, 0]))


def test_metrics_on_the_balanced_pairs_of_a_labelled_set() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(6).repeat_interleave(8)
    emb = torch.nn.functional.one_hot(labels, 6).float() + 0.4 * torch.randn(48, 6, generator=g)
    i, j, same = labelled_pairs(labels)
    d = paired_distances(emb[i], emb[j])
    report = verification_metrics(d, same)
    assert report.n_genuine == 6 * 28 and report.n_impostor == 6 * 28
    assert report.auc == pytest.approx(roc_auc_score(same.numpy(), -d.numpy()), abs=1e-12)
    assert 0.5 < report.auc <= 1.0 and 0.0 <= report.eer < 0.5


def test_eer_is_interpolated_linearly_not_at_a_midpoint() -> None:
    # Genuine at 1, 2, 5; impostors at 3 (four tied) and 6. Accepting d <= t: below 3 FAR = 0
    # and FRR = 1/3; at 3 FAR jumps to 4/5 while FRR stays 1/3. FAR = FRR = 1/3 lies on that
    # step, so the EER is exactly 1/3 (a midpoint of the two ROC points would say 0.4).
    distances = torch.tensor([1.0, 2.0, 5.0, 3.0, 3.0, 3.0, 3.0, 6.0])
    same = torch.tensor([1, 1, 1, 0, 0, 0, 0, 0])
    assert eer(distances, same) == pytest.approx(1 / 3, abs=1e-12)
    # Mirrored: FRR falls on a vertical step while FAR stays 1/4, so the EER is 1/4.
    distances = torch.tensor([2.0, 2.0, 2.0, 5.0, 1.0, 3.0, 4.0, 6.0])
    same = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])
    assert eer(distances, same) == pytest.approx(1 / 4, abs=1e-12)
