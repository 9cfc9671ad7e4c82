"""The pair-weighting losses (multi-similarity with its miner, circle, generalised lifted
structure): each against a float64 reference written from its paper's formula with loops,
against pytorch-metric-learning 2.9's value and gradient with the same settings, by gradcheck,
finite on the batches that break naive code, free of host synchronisation, and their option
errors.

Documented differences from PML (none shows on the batches compared here):
- PML returns 0 whenever at most one positive and one negative pair are left (its
  `GenericPairLoss` shortcut); ours computes the loss of that one pair.
- PML's circle loss averages over the anchors whose loss is > 0 (`AvgNonZeroReducer`), ours
  over the anchors with a positive and a negative: they differ only where an anchor's loss
  underflows to exactly 0.
- PML's lifted structure loss normalises the embeddings by default (`LpDistance`); ours
  measures `metric` on the embeddings as given, so PML is compared with
  `LpDistance(normalize_embeddings=False)`.
"""

from __future__ import annotations

import importlib
import inspect
import math

import pytest
import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml
from pytorch_metric_learning import miners as pml_miners
from torch.utils._python_dispatch import TorchDispatchMode

from siamese.errors import ConfigError
from siamese.losses.catalog import loss_entry
from siamese.losses.circle import CircleLoss
from siamese.losses.lifted_structure import LiftedStructureLoss
from siamese.losses.multi_similarity import MultiSimilarityLoss, multi_similarity_pairs
from siamese.mining import positive_negative_masks

# ---------------------------------------------------------------- references, plain loops


def _rows(t: torch.Tensor) -> list[list[float]]:
    return [[float(v) for v in row] for row in t.double()]


def _cosine(a: list[float], b: list[float]) -> float:
    na = math.sqrt(sum(v * v for v in a))
    nb = math.sqrt(sum(v * v for v in b))
    if na == 0 or nb == 0:
        return 0.0
    return sum(u * v for u, v in zip(a, b, strict=True)) / (na * nb)


def _distance(a: list[float], b: list[float], metric: str) -> float:
    if metric == "cosine":
        return max(0.0, 1.0 - _cosine(a, b))
    squared = sum((u - v) ** 2 for u, v in zip(a, b, strict=True))
    return squared if metric == "sqeuclidean" else math.sqrt(squared)


def _pairs(x, y, rx, ry, measure) -> list[tuple[list[float], list[float]]]:
    """For each anchor: (values to its positives, values to its negatives)."""
    anchors, labels = _rows(x), [int(v) for v in y]
    same_set = rx is None
    refs = anchors if same_set else _rows(rx)
    ref_labels = labels if same_set else [int(v) for v in ry]
    out = []
    for i, a in enumerate(anchors):
        pos, neg = [], []
        for j, r in enumerate(refs):
            if same_set and i == j:
                continue
            (pos if labels[i] == ref_labels[j] else neg).append(measure(a, r))
        out.append((pos, neg))
    return out


def _log_sum_exp(values: list[float], add_one: bool = False) -> float:
    """log(Σ exp v) (+ exp 0 with add_one); an empty sum without the one counts 0 (PML)."""
    terms = [*values, 0.0] if add_one else list(values)
    if not terms:
        return 0.0
    top = max(terms)
    return top + math.log(sum(math.exp(v - top) for v in terms))


def _softplus(v: float) -> float:
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


def ms_reference(
    x, y, rx=None, ry=None, alpha=2.0, beta=50.0, base=0.5, miner=True, epsilon=0.1
) -> float:
    """Wang et al. 2019, eq. 9 per anchor, after the §3.3 miner; mean over all anchors."""
    total = 0.0
    pairs = _pairs(x, y, rx, ry, _cosine)
    for pos, neg in pairs:
        if miner:
            if pos and neg:
                least_pos, most_neg = min(pos), max(neg)
                pos, neg = (
                    [s for s in pos if s - epsilon < most_neg],
                    [s for s in neg if s + epsilon > least_pos],
                )
            else:
                pos, neg = [], []
        total += _log_sum_exp([-alpha * (s - base) for s in pos], add_one=True) / alpha
        total += _log_sum_exp([beta * (s - base) for s in neg], add_one=True) / beta
    return total / len(pairs)


def circle_reference(x, y, rx=None, ry=None, margin=0.4, gamma=80.0) -> float:
    """Sun et al. 2020, eq. 6 per anchor with both a positive and a negative; their mean."""
    losses = []
    for pos, neg in _pairs(x, y, rx, ry, _cosine):
        if not pos or not neg:
            continue
        logit_p = [-gamma * max(0.0, 1 + margin - s) * (s - (1 - margin)) for s in pos]
        logit_n = [gamma * max(0.0, s + margin) * (s - margin) for s in neg]
        losses.append(_softplus(_log_sum_exp(logit_p) + _log_sum_exp(logit_n)))
    return sum(losses) / len(losses) if losses else 0.0


def lifted_reference(
    x, y, rx=None, ry=None, margin=1.0, pos_margin=0.0, metric="euclidean"
) -> float:
    """Hermans et al. 2017's generalised lifted structure per anchor (an empty side counts
    0, as in PML); the mean over all anchors."""
    pairs = _pairs(x, y, rx, ry, lambda a, b: _distance(a, b, metric))
    total = 0.0
    for pos, neg in pairs:
        inner = _log_sum_exp([d - pos_margin for d in pos]) + _log_sum_exp(
            [margin - d for d in neg]
        )
        total += max(0.0, inner)
    return total / len(pairs)


def _clustered(n: int, dim: int, classes: int, seed: int, spread: float = 0.6, dtype=torch.float64):
    """Embeddings near their class's centre: some pairs inside every miner's margins."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g, dtype=dtype)
    y = torch.randint(0, classes, (n,), generator=g)
    x = centres[y] + spread * torch.randn(n, dim, generator=g, dtype=dtype)
    return x, y


def _batch_and_reference(seed: int, dim: int = 6):
    x, y = _clustered(18, dim, 5, seed)
    y[0] = 7  # a class of one in the batch (no positive without the reference set)
    rx, ry = _clustered(23, dim, 6, seed + 100)
    return x, y, rx, ry


# ---------------------------------------------------------------- (1) the formulas

MS_SETTINGS = [
    {},
    {"miner": False},
    {"alpha": 1.0, "beta": 20.0, "base": 0.2, "epsilon": 0.3},
    {"alpha": 4.0, "beta": 80.0, "base": 0.7, "epsilon": 0.0},
    {"alpha": 0.5, "beta": 10.0, "base": -0.3, "miner": False},
]


@pytest.mark.parametrize("settings", MS_SETTINGS)
@pytest.mark.parametrize("with_reference", [False, True])
def test_multi_similarity_is_its_formula(settings: dict, with_reference: bool) -> None:
    for seed in range(3):
        x, y, rx, ry = _batch_and_reference(seed)
        if not with_reference:
            rx = ry = None
        expected = ms_reference(x, y, rx, ry, **settings)
        out = MultiSimilarityLoss(**settings)(x, y, rx, ry)
        assert float(out.loss) == pytest.approx(expected, rel=1e-10, abs=1e-12)


CIRCLE_SETTINGS = [{}, {"margin": 0.25, "gamma": 256.0}, {"margin": 0.0, "gamma": 1.0}]


@pytest.mark.parametrize("settings", CIRCLE_SETTINGS)
@pytest.mark.parametrize("with_reference", [False, True])
def test_circle_is_its_formula(settings: dict, with_reference: bool) -> None:
    for seed in range(3):
        x, y, rx, ry = _batch_and_reference(seed)
        if not with_reference:
            rx = ry = None
        expected = circle_reference(x, y, rx, ry, **settings)
        out = CircleLoss(**settings)(x, y, rx, ry)
        assert float(out.loss) == pytest.approx(expected, rel=1e-10, abs=1e-12)


LIFTED_SETTINGS = [
    {},
    {"margin": 4.0, "pos_margin": 1.5},
    {"margin": 30.0, "pos_margin": 10.0, "metric": "sqeuclidean"},
    {"margin": 0.8, "pos_margin": 0.1, "metric": "cosine"},
]


@pytest.mark.parametrize("settings", LIFTED_SETTINGS)
@pytest.mark.parametrize("with_reference", [False, True])
def test_lifted_structure_is_its_formula(settings: dict, with_reference: bool) -> None:
    for seed in range(3):
        x, y, rx, ry = _batch_and_reference(seed)
        x, rx = 3 * x, 3 * rx  # apart: some anchors outside the hinge (0.6–0.9 active)
        if not with_reference:
            rx = ry = None
        expected = lifted_reference(x, y, rx, ry, **settings)
        out = LiftedStructureLoss(**settings)(x, y, rx, ry)
        assert float(out.loss) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_the_miner_is_the_papers() -> None:
    """Kept pairs from `multi_similarity_pairs`, against a loop over every pair."""
    x, y, rx, ry = _batch_and_reference(4)
    for eps in (0.0, 0.1, 0.5):
        for refs in ((None, None), (rx, ry)):
            sim = (
                torch.nn.functional.normalize(x)
                @ torch.nn.functional.normalize(x if refs[0] is None else refs[0]).T
            )
            positive, negative = positive_negative_masks(y, refs[1])
            kept_pos, kept_neg = multi_similarity_pairs(sim, positive, negative, eps)
            for i in range(sim.shape[0]):
                pos = [float(sim[i, j]) for j in range(sim.shape[1]) if positive[i, j]]
                neg = [float(sim[i, j]) for j in range(sim.shape[1]) if negative[i, j]]
                for j in range(sim.shape[1]):
                    s = float(sim[i, j])
                    want_pos = bool(positive[i, j]) and bool(neg) and s - eps < max(neg)
                    want_neg = bool(negative[i, j]) and bool(pos) and s + eps > min(pos)
                    assert bool(kept_pos[i, j]) == want_pos and bool(kept_neg[i, j]) == want_neg


def test_statistics() -> None:
    x, y, rx, ry = _batch_and_reference(5)
    positive, negative = positive_negative_masks(y, ry)
    cos = torch.nn.functional.normalize(x) @ torch.nn.functional.normalize(rx).T
    d = torch.cdist(x, rx)
    ms = MultiSimilarityLoss()(x, y, rx, ry).stats
    kept_pos, kept_neg = multi_similarity_pairs(cos, positive, negative, 0.1)
    kept = int(kept_pos.sum() + kept_neg.sum())
    assert ms["n_valid"] == kept
    assert ms["active_fraction"] == pytest.approx(kept / (positive.sum() + negative.sum()))
    assert ms["mean_pos_dist"] == pytest.approx(float((1 - cos[positive]).mean()))
    assert ms["mean_neg_dist"] == pytest.approx(float((1 - cos[negative]).mean()))
    circle = CircleLoss()(x, y, rx, ry).stats
    assert circle["n_valid"] == int((positive.any(1) & negative.any(1)).sum())
    assert 0.0 <= circle["active_fraction"] <= 1.0
    lifted = LiftedStructureLoss()(x, y, rx, ry).stats
    assert lifted["mean_pos_dist"] == pytest.approx(float(d[positive].mean()))
    assert lifted["mean_neg_dist"] == pytest.approx(float(d[negative].mean()))
    assert lifted["n_valid"] == x.shape[0]
    within = LiftedStructureLoss()(x, y).stats  # the batch itself: no self-pairs
    pos_in, neg_in = positive_negative_masks(y)
    d_in = torch.cdist(x, x)
    assert within["mean_pos_dist"] == pytest.approx(float(d_in[pos_in].mean()))
    assert within["mean_neg_dist"] == pytest.approx(float(d_in[neg_in].mean()))


# ---------------------------------------------------------------- (2) PML 2.9


def _pml_ms(settings: dict):
    s = {"alpha": 2.0, "beta": 50.0, "base": 0.5, "miner": True, "epsilon": 0.1, **settings}
    loss = pml.MultiSimilarityLoss(alpha=s["alpha"], beta=s["beta"], base=s["base"])
    miner = pml_miners.MultiSimilarityMiner(epsilon=s["epsilon"]) if s["miner"] else None

    def call(x, y, rx, ry):
        indices = miner(x, y, rx, ry) if miner is not None else None
        return loss(x, y, indices, rx, ry)

    return call


def _pml_circle(settings: dict):
    s = {"margin": 0.4, "gamma": 80.0, **settings}
    loss = pml.CircleLoss(m=s["margin"], gamma=s["gamma"])
    return lambda x, y, rx, ry: loss(x, y, None, rx, ry)


def _pml_lifted(settings: dict):
    s = {"margin": 1.0, "pos_margin": 0.0, "metric": "euclidean", **settings}
    power = 2 if s["metric"] == "sqeuclidean" else 1
    distance = pml_distances.LpDistance(normalize_embeddings=False, power=power)
    loss = pml.GeneralizedLiftedStructureLoss(s["margin"], s["pos_margin"], distance=distance)
    return lambda x, y, rx, ry: loss(x, y, None, rx, ry)


PML_CASES = [
    *[(MultiSimilarityLoss, _pml_ms, s) for s in MS_SETTINGS],
    *[(CircleLoss, _pml_circle, s) for s in CIRCLE_SETTINGS],
    *[(LiftedStructureLoss, _pml_lifted, s) for s in LIFTED_SETTINGS[:3]],  # PML: Lp only
]


@pytest.mark.parametrize(("ours", "theirs", "settings"), PML_CASES)
@pytest.mark.parametrize("labels", ["pk", "mod"])
@pytest.mark.parametrize("with_reference", [False, True])
def test_value_and_gradient_equal_pmls(ours, theirs, settings, labels, with_reference) -> None:
    g = torch.Generator().manual_seed(7)
    n, classes = 64, 16 if labels == "pk" else 10
    y = torch.arange(n) // 4 if labels == "pk" else torch.arange(n) % 10
    lifted = ours is LiftedStructureLoss
    # Overlapping classes for the cosine losses (the miner keeps some pairs, not all);
    # separated ones for the lifted structure, scaled so that some anchors are inside the
    # hinge and some outside.
    noise, spread = (0.4, 1.0) if lifted else (0.6, 0.5)
    centres = torch.randn(classes + 10, 16, generator=g) * spread
    x = torch.randn(n, 16, generator=g) * noise + centres[y]
    rx = ry = None
    if with_reference:  # some of the batch's classes, some others
        ry = torch.randint(0, classes + 10, (40,), generator=g)
        rx = torch.randn(40, 16, generator=g) * noise + centres[ry]
    if lifted:
        factor = 1.5 if settings.get("metric") == "sqeuclidean" else 2.5
        x, rx = x * factor, (rx * factor if rx is not None else None)
    if ours is not CircleLoss and settings.get("miner", True):
        active = ours(**settings)(x, y, rx, ry).stats["active_fraction"]
        assert 0.0 < active < 1.0  # the data exercise the miner or the hinge both ways
    ea, eb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    mine = ours(**settings)(ea, y, rx, ry).loss
    expected = theirs(settings)(eb, y, rx, ry)
    mine.backward()
    expected.backward()
    assert float(mine.detach()) == pytest.approx(float(expected.detach()), rel=2e-5, abs=1e-6)
    scale = float(eb.grad.abs().max()) + 1e-12
    torch.testing.assert_close(ea.grad / scale, eb.grad / scale, rtol=0, atol=2e-5)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (MultiSimilarityLoss(), _pml_ms({})),
        (MultiSimilarityLoss(miner=False), _pml_ms({"miner": False})),
        (CircleLoss(), _pml_circle({})),
        (LiftedStructureLoss(), _pml_lifted({})),
    ],
)
def test_degenerate_batches_equal_pmls(ours, theirs) -> None:
    """Where an anchor lacks positives or negatives, the conventions are PML's."""
    g = torch.Generator().manual_seed(8)
    cases = {
        "one class": torch.zeros(6, dtype=torch.long),
        "one example per class": torch.arange(6),
        "some singletons": torch.tensor([0, 0, 1, 2, 3, 3]),
    }
    for name, y in cases.items():
        x = torch.randn(6, 5, generator=g) * 0.5
        assert float(ours(x, y).loss) == pytest.approx(
            float(theirs(x, y, None, None)), rel=1e-5, abs=1e-7
        ), name


def test_miner_equals_pmls() -> None:
    g = torch.Generator().manual_seed(9)
    x = torch.randn(48, 8, generator=g)
    y = torch.randint(0, 12, (48,), generator=g)
    y[:3] = torch.tensor([40, 41, 42])  # anchors without positives
    rx, ry = torch.randn(30, 8, generator=g), torch.randint(0, 12, (30,), generator=g)
    for eps in (0.0, 0.1, 0.4):
        for refs in ((None, None), (rx, ry)):
            miner = pml_miners.MultiSimilarityMiner(epsilon=eps)
            a1, p, a2, n = miner(x, y, *refs)
            other = x if refs[0] is None else refs[0]
            sim = torch.nn.functional.normalize(x) @ torch.nn.functional.normalize(other).T
            positive, negative = positive_negative_masks(y, refs[1])
            kept_pos, kept_neg = multi_similarity_pairs(sim, positive, negative, eps)
            assert set(zip(a1.tolist(), p.tolist(), strict=True)) == set(
                map(tuple, kept_pos.nonzero().tolist())
            )
            assert set(zip(a2.tolist(), n.tolist(), strict=True)) == set(
                map(tuple, kept_neg.nonzero().tolist())
            )


# ---------------------------------------------------------------- (3) gradients

GRADCHECK_LOSSES = [
    MultiSimilarityLoss(),
    MultiSimilarityLoss(miner=False, alpha=1.0, beta=10.0),
    LiftedStructureLoss(margin=3.0, pos_margin=0.5),
    LiftedStructureLoss(margin=20.0, pos_margin=2.0, metric="sqeuclidean"),
    LiftedStructureLoss(margin=0.9, metric="cosine"),
]


@pytest.mark.parametrize("loss", GRADCHECK_LOSSES, ids=lambda m: type(m).__name__)
def test_gradients_by_gradcheck(loss) -> None:
    x, y = _clustered(9, 4, 3, seed=11, spread=0.8)
    rx, ry = _clustered(7, 4, 4, seed=12, spread=0.8)
    x.requires_grad_(True)
    rx.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: loss(a, y).loss, (x,))
    assert torch.autograd.gradcheck(lambda a, r: loss(a, y, r, ry).loss, (x, rx))


def _circle_autograd(x, y, rx, ry, margin, gamma):
    """The circle loss by autograd, α detached as in the paper's code (vectorised here, but
    independent of the module: masked logsumexp by torch)."""
    xn = torch.nn.functional.normalize(x)
    rn = xn if rx is None else torch.nn.functional.normalize(rx)
    s = xn @ rn.T
    positive, negative = positive_negative_masks(y, ry)
    alpha_p = torch.relu(1 + margin - s.detach())
    alpha_n = torch.relu(s.detach() + margin)
    logit_p = (-gamma * alpha_p * (s - (1 - margin))).masked_fill(~positive, float("-inf"))
    logit_n = (gamma * alpha_n * (s - margin)).masked_fill(~negative, float("-inf"))
    valid = positive.any(1) & negative.any(1)
    per = torch.nn.functional.softplus(logit_p.logsumexp(1) + logit_n.logsumexp(1))
    return per[valid].mean()


@pytest.mark.parametrize("settings", CIRCLE_SETTINGS)
def test_circle_gradient_holds_the_weights_constant(settings: dict) -> None:
    """gradcheck does not apply: the circle loss's gradient treats α_p, α_n as constants (the
    paper's code, PML), so it is not the derivative of the value. It equals autograd's through
    the formula with the α detached."""
    x, y, rx, ry = _batch_and_reference(13)
    for refs in ((None, None), (rx, ry)):
        a = x.clone().requires_grad_(True)
        b = x.clone().requires_grad_(True)
        CircleLoss(**settings)(a, y, *refs).loss.backward()
        _circle_autograd(
            b, y, *refs, settings.get("margin", 0.4), settings.get("gamma", 80.0)
        ).backward()
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- (4) degenerate batches

ALL_LOSSES = [
    MultiSimilarityLoss(),
    MultiSimilarityLoss(miner=False),
    CircleLoss(),
    CircleLoss(margin=0.0, gamma=512.0),
    LiftedStructureLoss(),
    LiftedStructureLoss(metric="sqeuclidean"),
    LiftedStructureLoss(metric="cosine"),
]


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=lambda m: type(m).__name__)
def test_degenerate_batches_give_finite_losses_and_gradients(loss) -> None:
    cases = {
        "one class": (torch.randn(6, 8), torch.zeros(6, dtype=torch.long), None, None),
        "one example per class": (torch.randn(4, 8), torch.arange(4), None, None),
        "duplicates": (torch.ones(5, 8), torch.tensor([0, 0, 1, 1, 2]), None, None),
        "zero embeddings": (torch.zeros(3, 8), torch.tensor([0, 1, 1]), None, None),
        "a batch of one": (torch.randn(1, 8), torch.tensor([3]), None, None),
        "far apart": (torch.randn(6, 8) * 1e3, torch.tensor([0, 0, 1, 1, 2, 2]), None, None),
        "reference without positives": (
            torch.randn(4, 8),
            torch.tensor([0, 1, 0, 1]),
            torch.randn(3, 8),
            torch.tensor([5, 6, 7]),
        ),
        "reference of one class": (
            torch.randn(4, 8),
            torch.tensor([0, 1, 0, 1]),
            torch.randn(3, 8),
            torch.zeros(3, dtype=torch.long),
        ),
        "duplicated reference": (
            torch.ones(2, 8),
            torch.tensor([0, 1]),
            torch.ones(3, 8),
            torch.tensor([0, 1, 1]),
        ),
        "empty reference": (
            torch.randn(3, 8),
            torch.tensor([0, 1, 1]),
            torch.zeros(0, 8),
            torch.zeros(0, dtype=torch.long),
        ),
    }
    for name, (x, y, rx, ry) in cases.items():
        x = x.clone().requires_grad_(True)
        out = loss(x, y, rx, ry)
        out.loss.backward()
        assert torch.isfinite(out.loss), name
        assert x.grad is not None and torch.isfinite(x.grad).all(), name
        assert all(math.isfinite(v) for v in out.stats.values()), name
        assert set(out.stats) >= {"active_fraction", "mean_pos_dist", "mean_neg_dist", "n_valid"}
        if name in ("a batch of one", "empty reference"):
            assert float(out.loss.detach()) == 0.0, name


def test_nothing_to_compare_costs_nothing() -> None:
    """Without positives or negatives (the miner's and circle's requirement), the loss is 0."""
    one_class = torch.randn(5, 8), torch.zeros(5, dtype=torch.long)
    singletons = torch.randn(5, 8), torch.arange(5)
    for x, y in (one_class, singletons):
        assert float(MultiSimilarityLoss()(x, y).loss) == 0.0
        assert float(CircleLoss()(x, y).loss) == 0.0


def test_half_precision_inputs_compute_in_float32() -> None:
    x, y = _clustered(16, 8, 4, seed=14, dtype=torch.float32)
    for loss in ALL_LOSSES:
        full = loss(x, y).loss
        half = loss(x.to(torch.bfloat16), y).loss
        assert half.dtype == torch.float32
        assert float(half) == pytest.approx(float(full), rel=0.05, abs=0.05)


# ---------------------------------------------------------------- no host synchronisation


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


SYNCING_OPS = {
    "aten.nonzero",
    "aten._local_scalar_dense",
    "aten.is_nonzero",
    "aten.masked_select",
    "aten.item",
    "aten.equal",
}


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=lambda m: type(m).__name__)
def test_forward_and_backward_never_synchronise(loss) -> None:
    x, y = _clustered(12, 8, 3, seed=15, dtype=torch.float32)
    rx, ry = _clustered(10, 8, 4, seed=16, dtype=torch.float32)
    x.requires_grad_(True)
    for refs in ((None, None), (rx, ry)):
        with _Recorder() as recorder:
            out = loss(x, y, *refs)
            out.loss.backward()
        assert not recorder.ops & SYNCING_OPS, recorder.ops & SYNCING_OPS


# ---------------------------------------------------------------- (5) option errors


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MultiSimilarityLoss(alpha=0), "multi_similarity alpha must be > 0, got 0"),
        (lambda: MultiSimilarityLoss(beta=-1.0), "multi_similarity beta must be > 0"),
        (lambda: MultiSimilarityLoss(base=1.5), "base must be >= -1 and <= 1, got 1.5"),
        (lambda: MultiSimilarityLoss(epsilon=-0.1), "epsilon must be >= 0, got -0.1"),
        (lambda: MultiSimilarityLoss(alpha=float("nan")), "alpha must be > 0, got nan"),
        (lambda: MultiSimilarityLoss(miner="yes"), "miner must be true or false"),
        (lambda: CircleLoss(margin=-0.1), "circle margin must be >= 0, got -0.1"),
        (lambda: CircleLoss(gamma=0.0), "circle gamma must be > 0, got 0.0"),
        (lambda: LiftedStructureLoss(margin=-1), "lifted_structure margin must be >= 0"),
        (lambda: LiftedStructureLoss(pos_margin=-2), "pos_margin must be >= 0, got -2"),
        (lambda: LiftedStructureLoss(metric="manhattan"), "unknown metric 'manhattan'"),
    ],
)
def test_settings_out_of_range_say_which(make, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        make()


def test_reference_is_given_whole() -> None:
    x, y = torch.randn(4, 3), torch.tensor([0, 0, 1, 1])
    for loss in (MultiSimilarityLoss(), CircleLoss(), LiftedStructureLoss()):
        with pytest.raises(ValueError, match="both"):
            loss(x, y, ref_embeddings=x)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("multi_similarity", MultiSimilarityLoss),
        ("circle", CircleLoss),
        ("lifted_structure", LiftedStructureLoss),
    ],
)
def test_constructors_take_the_catalogs_options_with_its_defaults(name: str, cls) -> None:
    entry = loss_entry(name)
    module, class_name = entry.target.split(":")
    assert getattr(importlib.import_module(f"siamese.losses.{module}"), class_name) is cls
    parameters = inspect.signature(cls).parameters
    expected = {option.name: option.default for option in entry.options}
    if entry.uses_metric:
        expected["metric"] = entry.metric
    assert {n: p.default for n, p in parameters.items()} == expected
    cls(**expected)
