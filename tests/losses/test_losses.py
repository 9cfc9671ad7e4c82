"""Mining losses against brute-force float64 references written as loops over triplets."""

import itertools
import math

import pytest
import torch

import siamese.losses.triplet
import siamese.mining
from siamese.errors import ConfigError
from siamese.losses import (
    ContrastiveLoss,
    PairClassifierLoss,
    TripletLoss,
    contrastive_loss,
    triplet_margin_loss,
)
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


@pytest.fixture(params=["direct", "sorted"], autouse=True)
def search_path(request, monkeypatch) -> str:
    """Run every test on both search paths of the miners and batch-all: the direct one (few
    positives per anchor) and the sorted one (many), by moving the switch-over point, with
    blocks of a single row so that the blockwise loops are exercised too."""
    monkeypatch.setattr(siamese.mining, "_BLOCK_ELEMENTS", 1)
    if request.param == "sorted":
        monkeypatch.setattr(siamese.mining, "DIRECT_SEARCH_MAX_POSITIVES", -1)
        monkeypatch.setattr(siamese.losses.triplet, "DIRECT_SEARCH_MAX_POSITIVES", -1)
    return request.param


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
@pytest.mark.parametrize(
    "make_loss",
    [
        lambda: TripletLoss(margin=0.2, mining="all"),
        lambda: TripletLoss(mining="all", soft=True),
        lambda: TripletLoss(margin=0.2, mining="semihard"),
        lambda: TripletLoss(mining="semihard", soft=True),
        lambda: TripletLoss(margin=0.2, mining="hard"),
        lambda: TripletLoss(margin=0.2, mining="random"),
        lambda: ContrastiveLoss(margin=1.0),
        lambda: ContrastiveLoss(margin=1.0, metric="cosine"),
        lambda: PairClassifierLoss(embedding_dim=4),
    ],
)
def test_loss_is_finite_with_a_gradient(x: torch.Tensor, y: torch.Tensor, make_loss) -> None:
    x = x.clone().requires_grad_(True)
    out = make_loss()(x, y)
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


def reference_batch_all(x: torch.Tensor, y: torch.Tensor, margin: float, soft: bool) -> float:
    """Mean of the non-zero hinge terms (or of all softplus terms) over every valid triplet."""
    d, y = brute_distances(x.double()), y.tolist()
    terms = []
    for a, p, n in itertools.product(range(len(y)), repeat=3):
        if a != p and y[a] == y[p] and y[n] != y[a]:
            diff = d[a][p] - d[a][n]
            terms.append(math.log1p(math.exp(diff)) if soft else max(diff + margin, 0.0))
    nonzero = terms if soft else [t for t in terms if t > 0]
    return sum(nonzero) / len(nonzero) if nonzero else 0.0


@pytest.mark.parametrize(("x", "y"), labelled_batches())
@pytest.mark.parametrize(
    ("margin", "soft"), [(0.0, False), (0.2, False), (1.0, False), (0.0, True)]
)
def test_batch_all_matches_reference(
    x: torch.Tensor, y: torch.Tensor, margin: float, soft: bool
) -> None:
    out = TripletLoss(margin=margin, mining="all", soft=soft)(x.double(), y)
    assert out.loss.item() == pytest.approx(reference_batch_all(x, y, margin, soft), abs=1e-9)


@pytest.mark.parametrize("soft", [False, True])
def test_batch_all_gradient_equals_the_enumerated_triplets(soft: bool) -> None:
    """The counting form has the gradient of the explicit mean over active triplets."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(14, 3, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randint(3, (14,), generator=g)
    TripletLoss(margin=0.4, mining="all", soft=soft)(x, y).loss.backward()
    x2 = x.detach().clone().requires_grad_(True)
    d = torch.cdist(x2, x2)
    a, p, n = torch.meshgrid(torch.arange(14), torch.arange(14), torch.arange(14), indexing="ij")
    valid = (a != p) & (y[a] == y[p]) & (y[n] != y[a])
    diff = (d[a, p] - d[a, n])[valid]
    terms = torch.nn.functional.softplus(diff) if soft else torch.relu(diff + 0.4)
    kept = terms if soft else terms[terms > 0]
    kept.mean().backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_batch_all_with_a_reference_set_and_block_sizes() -> None:
    from siamese.distances import pairwise_distances
    from siamese.losses import batch_all_triplet_loss

    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(9, 3, dtype=torch.float64, generator=g), torch.randint(3, (9,), generator=g)
    rx, ry = (
        torch.randn(11, 3, dtype=torch.float64, generator=g),
        torch.randint(3, (11,), generator=g),
    )
    d = torch.cdist(x, rx)
    want = []
    for a in range(9):
        for p in range(11):
            for n in range(11):
                if ry[p] == y[a] and ry[n] != y[a]:
                    want.append(max(float(d[a, p] - d[a, n]) + 0.3, 0.0))
    want = [t for t in want if t > 0]
    got = TripletLoss(margin=0.3, mining="all")(x, y, rx, ry)
    assert got.loss.item() == pytest.approx(sum(want) / len(want))
    dist = pairwise_distances(x, rx)
    same = batch_all_triplet_loss(dist, y, ry, 0.3, False)
    assert same.loss.item() == pytest.approx(got.loss.item())


def reference_contrastive(x, y, margin, pos_margin, ref_x=None, ref_y=None) -> float:
    pairs = []
    if ref_x is None:
        for i, j in itertools.combinations(range(len(y)), 2):
            pairs.append((x[i], x[j], int(y[i] == y[j])))
    else:
        for i in range(len(y)):
            for j in range(len(ref_y)):
                pairs.append((x[i], ref_x[j], int(y[i] == ref_y[j])))
    terms = []
    for a, b, same in pairs:
        d = float(((a.double() - b.double()) ** 2).sum().sqrt())
        terms.append(max(d - pos_margin, 0.0) ** 2 if same else max(margin - d, 0.0) ** 2)
    return sum(terms) / len(terms) if terms else 0.0


@pytest.mark.parametrize(("x", "y"), labelled_batches())
@pytest.mark.parametrize(("margin", "pos_margin"), [(1.0, 0.0), (2.0, 0.5)])
def test_contrastive_matches_reference(x, y, margin: float, pos_margin: float) -> None:
    out = ContrastiveLoss(margin=margin, pos_margin=pos_margin)(x.double(), y)
    assert out.loss.item() == pytest.approx(
        reference_contrastive(x, y, margin, pos_margin), abs=1e-9
    )
    x = x.clone().requires_grad_(True)
    loss = ContrastiveLoss(margin=margin)(x, y).loss
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


def test_contrastive_with_reference_set_and_per_pair_form() -> None:
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.tensor([0, 1, 0, 2, 1])
    rx, ry = torch.randn(4, 3, dtype=torch.float64), torch.tensor([1, 0, 3, 1])
    out = ContrastiveLoss(margin=1.5)(x, y, rx, ry)
    assert out.loss.item() == pytest.approx(reference_contrastive(x, y, 1.5, 0.0, rx, ry))
    a, b = torch.tensor([[0.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.3, 0.4], [0.3, 0.4]])
    torch.testing.assert_close(
        contrastive_loss(a, b, torch.tensor([1, 0]), margin=1.0), torch.tensor([0.25, 0.25])
    )


def test_pair_classifier_loss() -> None:
    torch.manual_seed(0)
    loss_fn = PairClassifierLoss(embedding_dim=3)
    x, y = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
    out = loss_fn(x, y)
    # Reference: class-balanced mean of the BCE over pairs i < j.
    genuine, impostor = [], []
    for i, j in itertools.combinations(range(6), 2):
        logit = float(loss_fn.head((x[i] - x[j]).abs()).detach())
        same = int(y[i] == y[j])
        p = 1 / (1 + math.exp(-logit))
        (genuine if same else impostor).append(-math.log(p if same else 1 - p))
    want = (sum(genuine) / len(genuine) + sum(impostor) / len(impostor)) / 2
    assert out.loss.item() == pytest.approx(want, rel=1e-5)
    out.loss.backward()
    assert loss_fn.head.weight.grad is not None
    per_pair = loss_fn.pair_loss(x[:2], x[2:4], torch.tensor([1, 0]))
    assert per_pair.shape == (2,) and (per_pair > 0).all()
    only_one_class = loss_fn(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    assert torch.isfinite(only_one_class.loss)


def test_gradcheck_all_losses() -> None:
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    for loss in (
        TripletLoss(margin=0.5, mining="all"),
        TripletLoss(mining="all", soft=True),
        TripletLoss(margin=0.5, mining="hard"),
        ContrastiveLoss(margin=2.0),
    ):
        assert torch.autograd.gradcheck(lambda e, loss=loss: loss(e, y).loss, (x,))


def _reference_semihard_negative_distances(dist: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """TensorFlow Addons' TripletSemiHardLoss choice, as plain loops in float64: for each
    positive pair (a, p), in row-major order, d(a, n) of the negative with the smallest
    distance *strictly* greater than d(a, p), else of the farthest negative."""
    d = dist.double().tolist()
    y = labels.tolist()
    chosen = []
    for a in range(len(y)):
        negatives = [d[a][n] for n in range(len(y)) if y[n] != y[a]]
        if not negatives:
            continue
        for p in range(len(y)):
            if p == a or y[p] != y[a]:
                continue
            farther = [v for v in negatives if v > d[a][p]]
            chosen.append(min(farther) if farther else max(negatives))
    return chosen


@pytest.mark.parametrize("counts", [(4, 4, 4, 4), (40, 40)])
@pytest.mark.parametrize("seed", range(5))
def test_semihard_ties_follow_tensorflow_addons(counts: tuple[int, ...], seed: int) -> None:
    # Duplicate embeddings (distance exactly 0) and distances quantised to quarters: a
    # negative at exactly d(a, p) is not semi-hard, the next farther one is. The autouse
    # fixture above runs this through the direct and the sorted search alike.
    g = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((c,), i) for i, c in enumerate(counts)])
    points = torch.randint(0, 4, (labels.numel(), 2), generator=g).double()
    points[1] = points[0]  # an exact duplicate
    dist = torch.cdist(points, points).mul(4).round().div(4)
    dist.fill_diagonal_(0)
    a, p, n = semihard_triplets(dist, labels)
    expected = _reference_semihard_negative_distances(dist, labels)
    order = torch.argsort(a * labels.numel() + p)
    assert dist[a[order], n[order]].tolist() == expected
    # Ties exist where it matters: some negative sits exactly at its positive's distance.
    positive = labels[:, None] == labels[None, :]
    ties = (dist[:, :, None] == dist[:, None, :]) & positive[:, :, None] & ~positive[:, None, :]
    assert bool(ties.any())
