import pytest
import torch
from sklearn.metrics import roc_auc_score

from siamese.errors import DataError
from siamese.evaluation.verification import (
    accuracy_at_threshold,
    best_threshold,
    eer,
    roc_auc,
    roc_curve,
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
    best = None
    for t in torch.linspace(float(d.min()) - 1e-9, float(d.max()) + 1e-9, 20001).tolist():
        far = float(((d <= t) & (same == 0)).sum()) / float((same == 0).sum())
        frr = float(((d > t) & (same == 1)).sum()) / float((same == 1).sum())
        if best is None or abs(far - frr) < best[0]:
            best = (abs(far - frr), (far + frr) / 2)
    return best[1]


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
