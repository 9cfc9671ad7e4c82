"""Mining losses against brute-force float64 references written as loops over triplets."""

import itertools

import pytest
import torch

from siamese.errors import ConfigError
from siamese.losses import TripletLoss, triplet_margin_loss
from siamese.mining import hardest_triplets, random_triplets, semihard_triplets


def brute_distances(x: torch.Tensor) -> list[list[float]]:
    n = x.shape[0]
    return [[float(((x[i] - x[j]) ** 2).sum().sqrt()) for j in range(n)] for i in range(n)]


def reference_semihard(x: torch.Tensor, y: torch.Tensor, margin: float) -> float:
    """TensorFlow Addons' TripletSemiHardLoss, by its definition."""
    d, y = brute_distances(x.double()), y.tolist()
    terms = []
    for a, p in itertools.permutations(range(len(y)), 2):
        if y[a] != y[p]:
            continue
        negatives = [d[a][n] for n in range(len(y)) if y[n] != y[a]]
        if not negatives:
            continue
        farther = [v for v in negatives if v > d[a][p]]
        d_an = min(farther) if farther else max(negatives)
        terms.append(max(d[a][p] - d_an + margin, 0.0))
    return sum(terms) / len(terms) if terms else 0.0


def reference_batch_hard(x: torch.Tensor, y: torch.Tensor, margin: float) -> float:
    d, y = brute_distances(x.double()), y.tolist()
    terms = []
    for a in range(len(y)):
        pos = [d[a][p] for p in range(len(y)) if p != a and y[p] == y[a]]
        neg = [d[a][n] for n in range(len(y)) if y[n] != y[a]]
        if pos and neg:
            terms.append(max(max(pos) - min(neg) + margin, 0.0))
    return sum(terms) / len(terms) if terms else 0.0


def labelled_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    batches = []
    for b, c in [(2, 2), (6, 2), (12, 3), (24, 5), (40, 8)]:
        x = torch.nn.functional.normalize(torch.randn(b, 4, generator=g), dim=1)
        y = torch.randint(c, (b,), generator=g)
        batches.append((x, y))
    # Edge cases: a single sample, one class only, all identical, all zero, singleton classes.
    batches.append((torch.randn(1, 4), torch.tensor([0])))
    batches.append((torch.randn(5, 4), torch.zeros(5, dtype=torch.long)))
    batches.append((torch.ones(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])))
    batches.append((torch.zeros(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])))
    batches.append((torch.randn(4, 4), torch.tensor([0, 1, 2, 3])))
    return batches


@pytest.mark.parametrize(("x", "y"), labelled_batches())
@pytest.mark.parametrize("margin", [0.0, 0.2, 1.0])
def test_semihard_matches_reference(x: torch.Tensor, y: torch.Tensor, margin: float) -> None:
    out = TripletLoss(margin=margin, mining="semihard")(x.double(), y)
    assert out.loss.item() == pytest.approx(reference_semihard(x, y, margin), abs=1e-9)


@pytest.mark.parametrize(("x", "y"), labelled_batches())
def test_batch_hard_matches_reference(x: torch.Tensor, y: torch.Tensor) -> None:
    out = TripletLoss(margin=0.3, mining="hard")(x.double(), y)
    assert out.loss.item() == pytest.approx(reference_batch_hard(x, y, 0.3), abs=1e-9)


@pytest.mark.parametrize(("x", "y"), labelled_batches())
@pytest.mark.parametrize("mining", ["semihard", "hard", "random"])
def test_loss_is_finite_with_a_gradient(x: torch.Tensor, y: torch.Tensor, mining: str) -> None:
    x = x.clone().requires_grad_(True)
    out = TripletLoss(margin=0.2, mining=mining)(x, y)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(v == v for v in out.stats.values())  # no NaN statistics
    assert set(out.stats) >= {"active_fraction", "mean_pos_dist", "mean_neg_dist", "n_valid"}


def test_nothing_valid_gives_zero_loss_and_zero_stats() -> None:
    out = TripletLoss()(torch.randn(5, 3, requires_grad=True), torch.zeros(5, dtype=torch.long))
    assert out.loss.item() == 0.0
    assert out.stats == {
        "active_fraction": 0.0,
        "mean_pos_dist": 0.0,
        "mean_neg_dist": 0.0,
        "n_valid": 0.0,
    }


def test_miners_return_valid_triplets() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(30, 5, generator=g)
    y = torch.randint(4, (30,), generator=g)
    dist = torch.cdist(x, x)
    for a, p, n in (
        semihard_triplets(dist, y),
        hardest_triplets(dist, y),
        random_triplets(dist, y, generator=g),
    ):
        assert (y[a] == y[p]).all() and (a != p).all() and (y[a] != y[n]).all()
    a, p, n = hardest_triplets(dist, y)
    for i in range(a.numel()):
        same = (y == y[a[i]]) & (torch.arange(30) != a[i])
        assert dist[a[i], p[i]] == dist[a[i]][same].max()
        assert dist[a[i], n[i]] == dist[a[i]][y != y[a[i]]].min()


def test_random_miner_covers_all_valid_choices() -> None:
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    dist = torch.zeros(6, 6)
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(200):
        a, p, n = random_triplets(dist, y, generator=g)
        seen.update(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))
    assert {(0, 1, 3), (0, 2, 5), (0, 2, 4)} <= seen
    assert all(a != 5 for a, _, _ in seen)  # class 2 has no positive


def test_reference_set_anchors_against_other_embeddings() -> None:
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 0, 1, 1, 2, 2])
    ref_x, ref_y = torch.randn(8, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 3, 3])
    out = TripletLoss(margin=0.5, mining="hard")(x, y, ref_x, ref_y)
    d = torch.cdist(x, ref_x)
    want = []
    for a in range(6):
        pos, neg = d[a][ref_y == y[a]], d[a][ref_y != y[a]]
        want.append(max(float(pos.max() - neg.min()) + 0.5, 0.0))
    assert out.loss.item() == pytest.approx(sum(want) / 6)
    with pytest.raises(ValueError, match="both"):
        TripletLoss()(x, y, ref_x, None)


def test_gradcheck_semihard() -> None:
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    assert torch.autograd.gradcheck(
        lambda e: TripletLoss(margin=0.5, mining="semihard")(e, y).loss, (x,)
    )


def test_offline_triplet_margin_loss() -> None:
    a, p, n = (
        torch.zeros(2, 2),
        torch.tensor([[3.0, 4.0], [0.0, 1.0]]),
        torch.tensor([[0.0, 1.0], [6.0, 8.0]]),
    )
    torch.testing.assert_close(triplet_margin_loss(a, p, n, margin=0.5), torch.tensor([4.5, 0.0]))
    soft = triplet_margin_loss(a, p, n, soft=True)
    torch.testing.assert_close(soft, torch.nn.functional.softplus(torch.tensor([4.0, -9.0])))


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="mining"):
        TripletLoss(mining="hardest")
    with pytest.raises(ConfigError, match="margin"):
        TripletLoss(margin=-1)
