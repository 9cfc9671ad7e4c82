"""The margin loss (Wu et al. 2017), NT-Xent and the supervised contrastive loss (Khosla et al.
2020): each against a float64 reference written from its formula with loops, against
pytorch-metric-learning's value (and gradients) in the same setting, by gradcheck, finite on
the batches that break naive code, and with their options checked.

Documented differences from PML (each has a test below):
- MarginLoss does not normalise the embeddings (PML's default `LpDistance` does): the model
  does; with unit-length inputs, or PML given `LpDistance(normalize_embeddings=False)`, the
  two agree. Its `metric="cosine"` is the cosine *distance* 1 − s with the same hinges;
  PML's `CosineSimilarity` flips them, so PML's β is 1 − ours there.
- NTXent and SupCon count a lone pair: PML's pair losses return 0 whenever the batch has at
  most one positive and at most one negative pair; here that pair is a term.
- NTXent is exact where PML caps a term at −log(tiny) ≈ 87 (float32); no test reaches it.
"""

from __future__ import annotations

import inspect
import itertools
import math

import pytest
import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml
from torch.func import functional_call

from siamese.errors import ConfigError
from siamese.losses.catalog import loss_entry
from siamese.losses.margin_loss import MarginLoss
from siamese.losses.ntxent import NTXentLoss
from siamese.losses.supcon import SupConLoss

# ---------------------------------------------------------------- float64 loop references


def _distance(a: torch.Tensor, b: torch.Tensor, metric: str) -> float:
    a, b = a.double().tolist(), b.double().tolist()
    if metric == "cosine":
        return 1.0 - _cosine(a, b)
    squared = sum((u - v) ** 2 for u, v in zip(a, b, strict=True))
    return squared if metric == "sqeuclidean" else math.sqrt(squared)


def _cosine(a: list[float], b: list[float]) -> float:
    na = math.sqrt(sum(u * u for u in a))
    nb = math.sqrt(sum(v * v for v in b))
    if na == 0 or nb == 0:
        return 0.0
    return sum(u * v for u, v in zip(a, b, strict=True)) / (na * nb)


def _sides(x, y, xr, yr):
    """Anchors and references, and whether (a, r) may pair (never an example with itself)."""
    if xr is None:
        return x, y.tolist(), x, y.tolist(), lambda a, r: a != r
    return x, y.tolist(), xr, yr.tolist(), lambda a, r: True


def margin_reference(x, y, xr=None, yr=None, margin=0.2, beta=1.2, nu=0.0, learn_beta=True,
                     metric="euclidean") -> float:  # fmt: skip
    """Wu et al.'s terms over every triplet (a, p, n), reduced as PML reduces them: the sum
    of both hinges of every triplet over the number of non-zero hinges, plus ν·β."""
    x, ya, r, yref, pairable = _sides(x, y, xr, yr)
    total, active, triplets = 0.0, 0, 0
    for a in range(len(ya)):
        positives = [p for p in range(len(yref)) if pairable(a, p) and yref[p] == ya[a]]
        negatives = [n for n in range(len(yref)) if yref[n] != ya[a]]
        for p, n in itertools.product(positives, negatives):
            pos = max(0.0, _distance(x[a], r[p], metric) - beta + margin)
            neg = max(0.0, beta - _distance(x[a], r[n], metric) + margin)
            total += pos + neg
            active += (pos > 0) + (neg > 0)
            triplets += 1
    if triplets == 0:
        return 0.0
    value = total / active if active else 0.0
    return value + (nu * beta if learn_beta else 0.0)


def ntxent_reference(x, y, xr=None, yr=None, temperature=0.07) -> float:
    """The mean over positive pairs of −log(e^{s_ap/τ} / (e^{s_ap/τ} + Σ_n e^{s_an/τ}))."""
    x, ya, r, yref, pairable = _sides(x, y, xr, yr)
    terms = []
    for a in range(len(ya)):
        s = [_cosine(x[a].double().tolist(), r[k].double().tolist()) / temperature
             for k in range(len(yref))]  # fmt: skip
        negatives = [s[n] for n in range(len(yref)) if yref[n] != ya[a]]
        for p in range(len(yref)):
            if pairable(a, p) and yref[p] == ya[a]:
                top = max([s[p], *negatives])
                denominator = sum(math.exp(v - top) for v in [s[p], *negatives])
                terms.append(-(s[p] - top - math.log(denominator)))
    return sum(terms) / len(terms) if terms else 0.0


def supcon_reference(x, y, xr=None, yr=None, temperature=0.1) -> float:
    """Per anchor, the mean over its positives of −log(e^{s_ap/τ} / Σ_{k≠a} e^{s_ak/τ});
    the mean over the anchors whose loss is > 0 (PML's reducer); 0 without a positive and
    a negative pair in the batch."""
    x, ya, r, yref, pairable = _sides(x, y, xr, yr)
    losses, any_negative = [], False
    for a in range(len(ya)):
        s = [_cosine(x[a].double().tolist(), r[k].double().tolist()) / temperature
             for k in range(len(yref))]  # fmt: skip
        others = [k for k in range(len(yref)) if pairable(a, k)]
        positives = [p for p in others if yref[p] == ya[a]]
        any_negative |= any(yref[k] != ya[a] for k in others)
        if not positives:
            continue
        top = max(s[k] for k in others)
        log_sum = top + math.log(sum(math.exp(s[k] - top) for k in others))
        losses.append(sum(log_sum - s[p] for p in positives) / len(positives))
    losses = [v for v in losses if v > 1e-12]
    if not any_negative or not losses:
        return 0.0
    return sum(losses) / len(losses)


# ---------------------------------------------------------------- data


def _batch(seed: int, n: int = 12, dim: int = 5, classes: int = 4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=dtype)
    y = torch.randint(0, classes, (n,), generator=g)
    y[-1] = classes + 7  # a class of one: an anchor without positives
    return x, y


def _refs(seed: int, n: int = 9, dim: int = 5, classes: int = 5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed + 100)
    return torch.randn(n, dim, generator=g, dtype=dtype), torch.randint(
        0, classes, (n,), generator=g
    )


MARGIN_SETTINGS = [
    {},
    {"margin": 0.5, "beta": 0.8, "nu": 0.1},
    {"margin": 0.0, "beta": 2.0, "learn_beta": False, "nu": 0.3},
    {"metric": "sqeuclidean", "beta": 4.0, "margin": 1.0, "nu": 0.01},
    {"metric": "cosine", "beta": 0.9, "margin": 0.1},
]


@pytest.mark.parametrize("options", MARGIN_SETTINGS)
@pytest.mark.parametrize("with_refs", [False, True])
def test_margin_loss_is_its_formula_in_float64(options: dict, with_refs: bool) -> None:
    for seed in range(3):
        x, y = _batch(seed)
        xr, yr = _refs(seed) if with_refs else (None, None)
        loss = MarginLoss(**options).double()
        # β is stored in float32, as PML stores it (1.2 is 1.2000000477 there)
        expected = margin_reference(x, y, xr, yr, **{**options, "beta": float(loss.beta.detach())})
        out = loss(x, y, xr, yr)
        assert float(out.loss.detach()) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("temperature", [0.07, 0.5, 2.0])
@pytest.mark.parametrize("with_refs", [False, True])
def test_ntxent_is_its_formula_in_float64(temperature: float, with_refs: bool) -> None:
    for seed in range(3):
        x, y = _batch(seed)
        xr, yr = _refs(seed) if with_refs else (None, None)
        out = NTXentLoss(temperature)(x, y, xr, yr)
        expected = ntxent_reference(x, y, xr, yr, temperature)
        assert float(out.loss.detach()) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("temperature", [0.1, 0.03, 1.0])
@pytest.mark.parametrize("with_refs", [False, True])
def test_supcon_is_its_formula_in_float64(temperature: float, with_refs: bool) -> None:
    for seed in range(3):
        x, y = _batch(seed)
        xr, yr = _refs(seed) if with_refs else (None, None)
        out = SupConLoss(temperature)(x, y, xr, yr)
        expected = supcon_reference(x, y, xr, yr, temperature)
        assert float(out.loss.detach()) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_a_tiny_temperature_stays_exact() -> None:
    """s/τ spans ±1,000: the log-sum-exps are shifted per row, nothing under- or overflows."""
    x, y = _batch(5)
    for loss, reference in ((NTXentLoss(0.001), ntxent_reference),
                            (SupConLoss(0.001), supcon_reference)):  # fmt: skip
        out = loss(x, y)
        assert math.isfinite(float(out.loss.detach()))
        assert float(out.loss.detach()) == pytest.approx(
            reference(x, y, None, None, 0.001), rel=1e-9
        )


# ---------------------------------------------------------------- pytorch-metric-learning


def _grads(fn, *tensors):
    tensors = [t.detach().clone().requires_grad_(True) for t in tensors]
    value = fn(*tensors)
    value.backward()
    return float(value.detach()), [t.grad for t in tensors]


def _pml_margin(options: dict, normalise: bool = False):
    metric = options.get("metric", "euclidean")
    beta = options.get("beta", 1.2)
    if metric == "cosine":
        distance, beta = pml_distances.CosineSimilarity(), 1.0 - beta
    else:
        power = 2 if metric == "sqeuclidean" else 1
        distance = pml_distances.LpDistance(normalize_embeddings=normalise, power=power)
    return pml.MarginLoss(
        margin=options.get("margin", 0.2), nu=options.get("nu", 0.0), beta=beta,
        triplets_per_anchor="all", learn_beta=options.get("learn_beta", True), distance=distance,
    )  # fmt: skip


@pytest.mark.parametrize(
    "options",
    [{}, {"margin": 0.5, "beta": 0.8, "nu": 0.1}, {"learn_beta": False, "nu": 0.3},
     {"metric": "sqeuclidean", "beta": 4.0, "margin": 1.0}, {"metric": "cosine", "beta": 0.9}],
)  # fmt: skip
@pytest.mark.parametrize("with_refs", [False, True])
def test_margin_loss_equals_pmls_value_and_gradients(options: dict, with_refs: bool) -> None:
    """Same value, same gradients for the embeddings, the references and β. (PML's cosine is
    a similarity: its β is 1 − ours; ν·β then differs, so ν = 0 there.)"""
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(48, 16, generator=g), torch.randint(0, 6, (48,), generator=g)
    xr, yr = torch.randn(40, 16, generator=g), torch.randint(0, 6, (40,), generator=g)
    ours, theirs = MarginLoss(**options), _pml_margin(options)
    if with_refs:
        mine, my_grads = _grads(lambda a, b: ours(a, y, b, yr).loss, x, xr)
        expected, their_grads = _grads(lambda a, b: theirs(a, y, ref_emb=b, ref_labels=yr), x, xr)
    else:
        mine, my_grads = _grads(lambda a: ours(a, y).loss, x)
        expected, their_grads = _grads(lambda a: theirs(a, y), x)
    assert mine == pytest.approx(expected, rel=1e-5, abs=1e-6)
    for a, b in zip(my_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    if ours.learn_beta:
        sign = -1.0 if options.get("metric") == "cosine" else 1.0
        assert float(ours.beta.grad) == pytest.approx(sign * float(theirs.beta.grad[0]), rel=1e-4)


def test_margin_loss_equals_pmls_defaults_on_unit_embeddings() -> None:
    """PML's default MarginLoss normalises; a normalising model gives the same value."""
    g = torch.Generator().manual_seed(8)
    x = torch.nn.functional.normalize(torch.randn(64, 32, generator=g), dim=1)
    y = torch.arange(64) // 4
    theirs = pml.MarginLoss(margin=0.2, nu=0.0, beta=1.2, triplets_per_anchor="all",
                            learn_beta=True)  # fmt: skip
    assert float(MarginLoss()(x, y).loss.detach()) == pytest.approx(
        float(theirs(x, y).detach()), rel=1e-5
    )


@pytest.mark.parametrize("make", [lambda: (NTXentLoss(), pml.NTXentLoss()),
                                  lambda: (NTXentLoss(0.5), pml.NTXentLoss(0.5)),
                                  lambda: (SupConLoss(), pml.SupConLoss()),
                                  lambda: (SupConLoss(0.05), pml.SupConLoss(0.05))])  # fmt: skip
@pytest.mark.parametrize("labels", ["pk", "ten", "singletons"])
@pytest.mark.parametrize("with_refs", [False, True])
def test_ntxent_and_supcon_equal_pmls_value_and_gradients(make, labels, with_refs) -> None:
    g = torch.Generator().manual_seed(9)
    x, xr = torch.randn(64, 16, generator=g), torch.randn(48, 16, generator=g)
    y = {"pk": torch.arange(64) // 4, "ten": torch.arange(64) % 10,
         "singletons": torch.cat([torch.arange(48) // 6, 100 + torch.arange(16)])}[labels]  # fmt: skip
    yr = torch.randint(0, 12, (48,), generator=g)
    ours, theirs = make()
    if with_refs:
        mine, my_grads = _grads(lambda a, b: ours(a, y, b, yr).loss, x, xr)
        expected, their_grads = _grads(lambda a, b: theirs(a, y, ref_emb=b, ref_labels=yr), x, xr)
    else:
        mine, my_grads = _grads(lambda a: ours(a, y).loss, x)
        expected, their_grads = _grads(lambda a: theirs(a, y), x)
    assert mine == pytest.approx(expected, rel=1e-5)
    for a, b in zip(my_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_a_lone_pair_is_a_term_here_and_zero_in_pml() -> None:
    """The documented difference: one anchor, one positive and one negative reference."""
    x, xr = torch.randn(1, 4), torch.randn(2, 4)
    y, yr = torch.tensor([0]), torch.tensor([0, 1])
    for ours, theirs in ((NTXentLoss(), pml.NTXentLoss()), (SupConLoss(), pml.SupConLoss())):
        assert float(theirs(x, y, ref_emb=xr, ref_labels=yr)) == 0.0
        assert float(ours(x, y, xr, yr).loss.detach()) > 0.0
        assert float(ours(x, y, xr, yr).loss.detach()) == pytest.approx(
            ntxent_reference(x, y, xr, yr) if isinstance(ours, NTXentLoss)
            else supcon_reference(x, y, xr, yr), rel=1e-5)  # fmt: skip


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("with_refs", [False, True])
def test_margin_loss_gradients_by_gradcheck_embeddings_and_beta(metric, with_refs) -> None:
    g = torch.Generator().manual_seed(10)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2, 0, 1])
    xr = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    yr = torch.tensor([0, 1, 1, 2, 2, 3]) if with_refs else None
    beta0 = {"euclidean": 1.8, "sqeuclidean": 3.0, "cosine": 0.9}[metric]
    loss = MarginLoss(margin=0.4, beta=beta0, nu=0.2, metric=metric).double()
    beta = torch.tensor(beta0, dtype=torch.float64, requires_grad=True)  # β as an input

    def fn(a: torch.Tensor, b: torch.Tensor, *r: torch.Tensor) -> torch.Tensor:
        refs = r[0] if r else None
        return functional_call(loss, {"beta": b}, (a, y, refs, yr)).loss

    assert torch.autograd.gradcheck(fn, (x, beta, xr) if with_refs else (x, beta))


@pytest.mark.parametrize("make", [lambda: NTXentLoss(0.5), lambda: NTXentLoss(0.07),
                                  lambda: SupConLoss(0.5), lambda: SupConLoss(0.1)])  # fmt: skip
@pytest.mark.parametrize("with_refs", [False, True])
def test_ntxent_and_supcon_gradients_by_gradcheck(make, with_refs) -> None:
    g = torch.Generator().manual_seed(11)
    x = torch.randn(7, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2, 0, 3])
    xr = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    yr = torch.tensor([0, 1, 1, 2, 2, 3])
    loss = make()
    if with_refs:
        assert torch.autograd.gradcheck(lambda a, r: loss(a, y, r, yr).loss, (x, xr))
    else:
        assert torch.autograd.gradcheck(lambda a: loss(a, y).loss, (x,))


def test_only_the_embeddings_get_a_gradient_when_the_references_are_a_memory() -> None:
    x = torch.randn(6, 4, requires_grad=True)
    xr = torch.randn(5, 4)  # detached, as a cross-batch memory is
    y, yr = torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 1, 2, 0, 1])
    for loss in (MarginLoss(), NTXentLoss(), SupConLoss()):
        x.grad = None
        loss(x, y, xr, yr).loss.backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and xr.grad is None


# ---------------------------------------------------------------- degenerate batches

LOSSES = {
    "margin": lambda: MarginLoss(nu=0.1),
    "margin fixed beta": lambda: MarginLoss(learn_beta=False),
    "margin cosine": lambda: MarginLoss(metric="cosine", beta=0.5),
    "ntxent": NTXentLoss,
    "supcon": SupConLoss,
}


def _degenerate_cases() -> dict[str, tuple]:
    return {
        "one class": (torch.randn(6, 8), torch.zeros(6, dtype=torch.long), None, None),
        "one example per class": (torch.randn(5, 8), torch.arange(5), None, None),
        "duplicates": (torch.ones(5, 8), torch.tensor([0, 0, 1, 1, 2]), None, None),
        "zero embeddings": (torch.zeros(4, 8), torch.tensor([0, 0, 1, 1]), None, None),
        "a batch of one": (torch.randn(1, 8), torch.tensor([3]), None, None),
        "a batch of two, one class": (torch.randn(2, 8), torch.tensor([1, 1]), None, None),
        "references of one class": (torch.randn(4, 8), torch.tensor([0, 0, 1, 1]),
                                    torch.randn(3, 8), torch.zeros(3, dtype=torch.long)),
        "no shared class with the references": (torch.randn(3, 8), torch.tensor([0, 1, 2]),
                                                torch.randn(3, 8), torch.tensor([5, 6, 7])),
        "duplicated references": (torch.ones(3, 8), torch.tensor([0, 1, 0]),
                                  torch.ones(4, 8), torch.tensor([0, 1, 0, 1])),
        "huge embeddings": (torch.randn(6, 8) * 1e15, torch.tensor([0, 0, 1, 1, 2, 2]), None, None),
    }  # fmt: skip


NOTHING_VALID = {"one class", "one example per class", "a batch of one",
                 "a batch of two, one class", "no shared class with the references"}  # fmt: skip


@pytest.mark.parametrize("name", list(LOSSES))
def test_degenerate_batches_give_finite_losses_and_gradients(name: str) -> None:
    loss = LOSSES[name]()
    for case, (x, y, xr, yr) in _degenerate_cases().items():
        x = x.clone().requires_grad_(True)
        xr = None if xr is None else xr.clone().requires_grad_(True)
        loss.zero_grad()
        out = loss(x, y, xr, yr)
        out.loss.backward()
        assert torch.isfinite(out.loss), (name, case)
        assert torch.isfinite(x.grad).all(), (name, case)
        if xr is not None:
            assert torch.isfinite(xr.grad).all(), (name, case)
        if isinstance(loss, MarginLoss) and loss.learn_beta:
            assert torch.isfinite(loss.beta.grad), (name, case)
        for key, value in out.stat_tensors.items():
            assert value.ndim == 0 and not value.requires_grad, (name, case, key)
            assert math.isfinite(float(value)), (name, case, key)
        if case in NOTHING_VALID:
            assert float(out.loss.detach()) == 0.0, (name, case)


def test_statistics_are_the_documented_ones() -> None:
    x, y = torch.randn(16, 8), torch.arange(16) // 4
    for loss in (MarginLoss(), NTXentLoss(), SupConLoss()):
        out = loss(x, y)
        assert set(out.stat_tensors) >= {"active_fraction", "mean_pos_dist", "mean_neg_dist",
                                         "n_valid"}  # fmt: skip
        assert 0.0 <= out.stats["active_fraction"] <= 1.0
    xn = torch.nn.functional.normalize(x.double(), dim=1)
    cos = xn @ xn.T
    same = (y[:, None] == y[None, :]) & ~torch.eye(16, dtype=torch.bool)
    out = NTXentLoss()(x, y)
    assert out.stats["mean_pos_dist"] == pytest.approx(float((1 - cos[same]).mean()), rel=1e-5)
    assert out.stats["mean_neg_dist"] == pytest.approx(
        float((1 - cos[y[:, None] != y[None, :]]).mean()), rel=1e-5)  # fmt: skip
    assert out.stats["n_valid"] == 48  # 16 anchors × 3 positives
    assert MarginLoss()(x, y).stats["n_valid"] == 16 * 3 * 12  # triplets
    assert SupConLoss()(x, y).stats["n_valid"] == 16  # anchors averaged


def test_beta_is_a_parameter_or_a_buffer_and_follows_the_module() -> None:
    learnt, fixed = MarginLoss(beta=0.7), MarginLoss(beta=0.7, learn_beta=False)
    assert [name for name, _ in learnt.named_parameters()] == ["beta"]
    assert list(fixed.parameters()) == [] and "beta" in fixed.state_dict()
    assert learnt.beta.ndim == 0 and float(learnt.beta.detach()) == pytest.approx(0.7)
    assert learnt.double().beta.dtype == torch.float64
    # β trains: an impostor inside the band lowers it, a genuine pair outside raises it
    y = torch.tensor([0, 0, 1])
    for x, sign in ((torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, 0.6]]), 1.0),
                    (torch.tensor([[0.0, 0.0], [0.9, 0.0], [0.0, 3.0]]), -1.0)):  # fmt: skip
        loss = MarginLoss(beta=0.7, margin=0.0, nu=0.0)
        loss(x, y).loss.backward()
        assert float(loss.beta.grad) == pytest.approx(sign)  # one active hinge of the two
    loss = MarginLoss(beta=0.7, margin=0.0, nu=0.25)
    loss(x, y).loss.backward()
    assert float(loss.beta.grad) == pytest.approx(-1.0 + 0.25)  # and ν


# ---------------------------------------------------------------- options


def test_constructors_take_the_catalogs_options_and_defaults() -> None:
    for name, cls in (("margin_loss", MarginLoss), ("ntxent", NTXentLoss),
                      ("supcon", SupConLoss)):  # fmt: skip
        entry = loss_entry(name)
        parameters = inspect.signature(cls).parameters
        for option in entry.options:
            assert parameters[option.name].default == option.default, (name, option.name)
        expected = {o.name for o in entry.options} | ({"metric"} if entry.uses_metric else set())
        assert set(parameters) == expected, name
        if entry.uses_metric:
            assert parameters["metric"].default == entry.metric
        cls()  # the defaults are valid


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MarginLoss(margin=-0.1), "margin_loss margin must be >= 0, got -0.1"),
        (lambda: MarginLoss(beta=-1.0), "margin_loss beta must be >= 0, got -1.0"),
        (lambda: MarginLoss(nu=-0.5), "margin_loss nu must be >= 0, got -0.5"),
        (lambda: MarginLoss(nu=float("nan")), "margin_loss nu must be >= 0, got nan"),
        (lambda: MarginLoss(metric="manhattan"), "unknown metric 'manhattan'"),
        (lambda: NTXentLoss(temperature=0), "ntxent temperature must be > 0, got 0"),
        (lambda: SupConLoss(temperature=-0.1), "supcon temperature must be > 0, got -0.1"),
        (lambda: SupConLoss(temperature=float("nan")), "supcon temperature must be > 0"),
    ],
)
def test_settings_out_of_range_say_which(make, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        make()


def test_references_come_whole() -> None:
    x, y = torch.randn(4, 3), torch.tensor([0, 0, 1, 1])
    for loss in (MarginLoss(), NTXentLoss(), SupConLoss()):
        with pytest.raises(ValueError, match="give both"):
            loss(x, y, torch.randn(2, 3), None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_host_synchronisation_on_cuda() -> None:
    x = torch.randn(64, 16, device="cuda", requires_grad=True)
    y = (torch.arange(64) // 4).cuda()
    xr, yr = torch.randn(32, 16, device="cuda"), (torch.arange(32) % 7).cuda()
    losses = [MarginLoss().cuda(), NTXentLoss(), SupConLoss()]
    for loss in losses:  # warm-up outside the check (first calls may initialise)
        loss(x, y).loss.backward()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for loss in losses:
            loss(x, y).loss.backward()
            loss(x, y, xr, yr).loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
