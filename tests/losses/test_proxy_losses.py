"""The proxy losses (Proxy-Anchor, Proxy-NCA): each against a float64 reference written from its
paper's formula with loops, against pytorch-metric-learning's value and gradients with the same
proxies, by gradcheck, and finite on the inputs that break naive code.

The proxy losses take no reference set (kind "classes": the proxies are the references), so
there is no ref_embeddings case here.
"""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning import losses as pml

from siamese.errors import ConfigError
from siamese.losses.proxy_anchor import ProxyAnchorLoss
from siamese.losses.proxy_nca import ProxyNCALoss

EPS = 1e-12  # F.normalize's floor on a norm


def _unit(v: list[float]) -> list[float]:
    norm = max(math.sqrt(sum(a * a for a in v)), EPS)
    return [a / norm for a in v]


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(p * q for p, q in zip(_unit(a), _unit(b), strict=True))


def _anchor_reference(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, margin: float,
                      alpha: float) -> float:  # fmt: skip
    """Kim et al.'s equation, one proxy and one example at a time, float64."""
    xs, ws, ys = x.double().tolist(), w.double().tolist(), [int(v) for v in y]
    with_positives = sorted(set(ys))
    positive_total, negative_total = 0.0, 0.0
    for c, proxy in enumerate(ws):
        pos = [math.exp(-alpha * (_cosine(xi, proxy) - margin))
               for xi, yi in zip(xs, ys, strict=True) if yi == c]  # fmt: skip
        neg = [math.exp(alpha * (_cosine(xi, proxy) + margin))
               for xi, yi in zip(xs, ys, strict=True) if yi != c]  # fmt: skip
        if c in with_positives:
            positive_total += math.log(1 + sum(pos))
        negative_total += math.log(1 + sum(neg))
    return positive_total / len(with_positives) + negative_total / len(ws)


def _nca_reference(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, scale: float) -> float:
    """Movshovitz-Attias et al.'s NCA over proxies (−log of the own proxy's softmax share of
    exp(−s‖x̂ − p̂‖²)), averaged over the batch, float64."""
    xs, ws = x.double().tolist(), [_unit(v) for v in w.double().tolist()]
    total = 0.0
    for xi, yi in zip(xs, y.tolist(), strict=True):
        u = _unit(xi)
        logits = [-scale * sum((a - b) ** 2 for a, b in zip(u, p, strict=True)) for p in ws]
        top = max(logits)
        log_sum = top + math.log(sum(math.exp(v - top) for v in logits))
        total += log_sum - logits[yi]
    return total / len(xs)


def _batch(seed: int, n: int, classes: int, dim: int, present: int | None = None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    y = torch.randint(0, present or classes, (n,), generator=g)
    return x, y


ANCHOR_SETTINGS = [(0.1, 32.0), (0.0, 8.0), (0.5, 4.0), (0.25, 64.0)]


@pytest.mark.parametrize(("margin", "alpha"), ANCHOR_SETTINGS)
def test_proxy_anchor_is_its_formula_in_float64(margin: float, alpha: float) -> None:
    loss = ProxyAnchorLoss(7, 5, margin=margin, alpha=alpha).double()
    x, y = _batch(0, 24, 7, 5, present=6)  # class 6 has no example: no positive term
    x[2] = loss.weight[int(y[2])].detach() * 3  # on its own proxy: cosine 1
    x[5] = -loss.weight[int(y[5])].detach()  # opposite its proxy: cosine −1
    expected = _anchor_reference(x, y, loss.weight.detach(), margin, alpha)
    assert float(loss(x, y).loss.detach()) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("scale", [1.0, 3.0, 16.0])
def test_proxy_nca_is_its_formula_in_float64(scale: float) -> None:
    loss = ProxyNCALoss(7, 5, scale=scale).double()
    x, y = _batch(1, 24, 7, 5, present=6)
    x[2] = loss.weight[int(y[2])].detach() * 3
    x[5] = -loss.weight[int(y[5])].detach()
    expected = _nca_reference(x, y, loss.weight.detach(), scale)
    assert float(loss(x, y).loss.detach()) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_the_statistics_are_their_definitions() -> None:
    loss = ProxyAnchorLoss(4, 3).double()
    x, y = _batch(2, 12, 4, 3)
    stats = loss(x, y).stats
    w = loss.weight.detach().tolist()
    cos = [[_cosine(xi, wc) for wc in w] for xi in x.tolist()]
    own = [cos[i][int(y[i])] for i in range(12)]
    beaten = [max(cos[i]) > own[i] for i in range(12)]
    others = [1 - (sum(cos[i]) - own[i]) / 3 for i in range(12)]
    assert stats["active_fraction"] == pytest.approx(sum(beaten) / 12)
    assert stats["mean_pos_dist"] == pytest.approx(sum(1 - v for v in own) / 12)
    assert stats["mean_neg_dist"] == pytest.approx(sum(others) / 12)
    assert stats["n_valid"] == 12.0
    nca = ProxyNCALoss(4, 3).double()
    with torch.no_grad():
        nca.weight.copy_(loss.weight)
    assert nca(x, y).stats == pytest.approx(stats)  # same proxies, same nearest ones


def _pml_pair(kind: str, classes: int, dim: int, option: float | None):
    if kind == "anchor":
        ours = ProxyAnchorLoss(classes, dim) if option is None else ProxyAnchorLoss(
            classes, dim, margin=option, alpha=16.0)  # fmt: skip
        theirs = pml.ProxyAnchorLoss(classes, dim, margin=ours.margin, alpha=ours.alpha)
    else:
        ours = ProxyNCALoss(classes, dim) if option is None else ProxyNCALoss(
            classes, dim, scale=option)  # fmt: skip
        theirs = pml.ProxyNCALoss(classes, dim, softmax_scale=ours.scale)
    with torch.no_grad():
        theirs.proxies.copy_(ours.weight)  # PML keeps (C, D), as we do
    return ours, theirs


@pytest.mark.parametrize(
    ("kind", "option"), [("anchor", None), ("anchor", 0.3), ("nca", None), ("nca", 8.0)]
)
@pytest.mark.parametrize("labels", ["pk", "ten", "missing"])
def test_each_loss_equals_pytorch_metric_learnings_value_and_gradients(
    kind: str, option: float | None, labels: str
) -> None:
    g = torch.Generator().manual_seed(3)
    classes = {"pk": 16, "ten": 10, "missing": 12}[labels]
    ours, theirs = _pml_pair(kind, classes, 32, option)
    if labels == "pk":
        y = torch.arange(64) // 4
    elif labels == "ten":
        y = torch.arange(64) % 10
    else:
        y = torch.randint(0, 9, (64,), generator=g)  # classes 9-11: no examples
    x = torch.randn(64, 32, generator=g).requires_grad_(True)
    ours_out = ours(x, y)
    ours_out.loss.backward()
    ours_grad = x.grad.clone()
    x.grad = None
    theirs_loss = theirs(x, y)
    theirs_loss.backward()
    assert float(ours_out.loss.detach()) == pytest.approx(
        float(theirs_loss.detach()), rel=1e-5, abs=1e-6
    )
    torch.testing.assert_close(ours_grad, x.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours.weight.grad, theirs.proxies.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("make", "pml_make"),
    [
        (lambda: ProxyAnchorLoss(20, 8), lambda: pml.ProxyAnchorLoss(20, 8)),
        (lambda: ProxyNCALoss(20, 8), lambda: pml.ProxyNCALoss(20, 8)),
    ],
)
def test_the_proxies_start_as_pmls_do(make, pml_make) -> None:
    torch.manual_seed(4)
    ours = make()
    torch.manual_seed(4)
    theirs = pml_make()
    torch.testing.assert_close(ours.weight.detach(), theirs.proxies.detach())


GRADCHECK = [
    lambda: ProxyAnchorLoss(4, 5),
    lambda: ProxyAnchorLoss(4, 5, margin=0.0, alpha=3.0),
    lambda: ProxyNCALoss(4, 5),
    lambda: ProxyNCALoss(4, 5, scale=4.0),
]


@pytest.mark.parametrize("make", GRADCHECK)
@pytest.mark.parametrize("labels", [[0, 1, 2, 0, 1, 0], [2, 2, 2, 2, 2, 2]])
def test_gradients_by_gradcheck(make, labels: list[int]) -> None:
    g = torch.Generator().manual_seed(5)
    loss = make().double()
    x = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(labels)  # class 3 has no example; the second batch is one class
    assert torch.autograd.gradcheck(lambda z, w: loss(z, y).loss, (x, loss.weight))


@pytest.mark.parametrize("make", [lambda c: ProxyAnchorLoss(c, 8), lambda c: ProxyNCALoss(c, 8)])
def test_degenerate_batches_give_finite_losses_and_gradients(make) -> None:
    loss = make(4)
    cases = {
        "one class": (torch.randn(6, 8), torch.zeros(6, dtype=torch.long)),
        "one example per class": (torch.randn(4, 8), torch.arange(4)),
        "a class with no example": (torch.randn(6, 8), torch.tensor([0, 0, 1, 1, 2, 2])),
        "duplicates": (torch.ones(5, 8), torch.tensor([0, 0, 1, 1, 2])),
        "zero embeddings": (torch.zeros(3, 8), torch.tensor([0, 1, 2])),
        "a batch of one": (torch.randn(1, 8), torch.tensor([3])),
        "huge embeddings": (torch.randn(4, 8) * 1e30, torch.tensor([0, 1, 2, 3])),
    }
    with torch.no_grad():  # exactly on its own proxy, and opposite another's
        cases["on the proxy"] = (loss.weight[:2].clone() * torch.tensor([[3.0], [-2.0]]),
                                 torch.tensor([0, 3]))  # fmt: skip
    for name, (x, y) in cases.items():
        x = x.clone().requires_grad_(True)
        loss.zero_grad()
        out = loss(x, y)
        out.loss.backward()
        assert torch.isfinite(out.loss), name
        assert out.loss.requires_grad, name
        assert torch.isfinite(x.grad).all() and torch.isfinite(loss.weight.grad).all(), name
        assert all(math.isfinite(v) for v in out.stats.values()), name
        assert set(out.stat_tensors) >= {"active_fraction", "mean_pos_dist", "mean_neg_dist",
                                         "n_valid"}, name  # fmt: skip
        assert all(t.dim() == 0 and not t.requires_grad for t in out.stat_tensors.values())
    one = make(1)  # one proxy: nothing to tell apart
    x = torch.randn(5, 8, requires_grad=True)
    out = one(x, torch.zeros(5, dtype=torch.long))
    out.loss.backward()
    assert torch.isfinite(x.grad).all() and out.stats["mean_neg_dist"] == 0.0


def test_a_one_class_batch_has_no_negative_term_for_its_proxy() -> None:
    """Only class 0 in the batch: its proxy has no negatives (its term is log 1 = 0), the
    other proxies no positives (they leave the first average)."""
    loss = ProxyAnchorLoss(3, 4, margin=0.1, alpha=10.0).double()
    x, _ = _batch(6, 5, 3, 4)
    y = torch.zeros(5, dtype=torch.long)
    expected = _anchor_reference(x, y, loss.weight.detach(), 0.1, 10.0)
    assert float(loss(x, y).loss.detach()) == pytest.approx(expected, rel=1e-12)


def test_float32_at_large_scales_stays_finite() -> None:
    """α = 200 and s = 200 would overflow exp in float32 without the shifts."""
    x = torch.randn(32, 16, requires_grad=True)
    y = torch.arange(32) % 4
    for loss in (ProxyAnchorLoss(6, 16, alpha=200.0), ProxyNCALoss(6, 16, scale=200.0)):
        out = loss(x, y)
        out.loss.backward()
        assert torch.isfinite(out.loss) and torch.isfinite(x.grad).all()
        x.grad = None


def test_settings_out_of_range_say_which() -> None:
    with pytest.raises(ConfigError, match=r"proxy_anchor margin must be >= 0, got -0.1"):
        ProxyAnchorLoss(3, 4, margin=-0.1)
    with pytest.raises(ConfigError, match=r"proxy_anchor alpha must be > 0, got 0"):
        ProxyAnchorLoss(3, 4, alpha=0)
    with pytest.raises(ConfigError, match=r"proxy_anchor alpha must be > 0, got nan"):
        ProxyAnchorLoss(3, 4, alpha=float("nan"))
    with pytest.raises(ConfigError, match=r"proxy_nca scale must be > 0, got -1"):
        ProxyNCALoss(3, 4, scale=-1)
    with pytest.raises(ConfigError, match="num_classes and embedding_dim >= 1"):
        ProxyNCALoss(0, 4)
    with pytest.raises(ConfigError, match="num_classes and embedding_dim >= 1"):
        ProxyAnchorLoss(3, 0)
