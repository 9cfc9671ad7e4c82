"""The classification losses (ArcFace, sub-centre ArcFace, CosFace, normalised softmax): each
against a float64 reference written from its paper's formula with loops, against
pytorch-metric-learning's value with the same weights, by gradcheck, and finite on the inputs
that break naive code."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning import losses as pml

from siamese.errors import ConfigError
from siamese.losses.arcface import ArcFaceLoss
from siamese.losses.cosface import CosFaceLoss
from siamese.losses.normalized_softmax import NormalizedSoftmaxLoss
from siamese.losses.subcenter_arcface import SubCenterArcFaceLoss


def _reference(kind: str, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, k: int,
               margin: float, scale: float) -> float:  # fmt: skip
    """Mean cross-entropy from the formula, one example and one class at a time, float64."""
    x, w = x.double(), w.double()
    n_classes = w.shape[0] // k
    total = 0.0
    for i in range(x.shape[0]):
        logits = []
        for c in range(n_classes):
            best = -2.0
            for j in range(k):
                v = w[c * k + j]
                norm = float(x[i].norm()) * float(v.norm())
                cos = float(x[i] @ v) / norm if norm > 0 else 0.0
                best = max(best, cos)
            if c == int(y[i]):
                if kind == "arcface":
                    theta = math.acos(max(-1.0, min(1.0, best)))
                    m = math.radians(margin)
                    best = math.cos(theta + m) if theta <= math.pi - m else best - m * math.sin(m)
                elif kind == "cosface":
                    best = best - margin
            logits.append(scale * best)
        top = max(logits)
        log_sum = top + math.log(sum(math.exp(v - top) for v in logits))
        total += log_sum - logits[int(y[i])]
    return total / x.shape[0]


CASES = [
    ("arcface", lambda c, d: ArcFaceLoss(c, d), 1, 28.6, 64.0),
    ("arcface", lambda c, d: ArcFaceLoss(c, d, margin=10.0, scale=8.0), 1, 10.0, 8.0),
    ("subcenter", lambda c, d: SubCenterArcFaceLoss(c, d), 3, 28.6, 64.0),
    ("cosface", lambda c, d: CosFaceLoss(c, d), 1, 0.35, 64.0),
    ("softmax", lambda c, d: NormalizedSoftmaxLoss(c, d), 1, 0.0, 20.0),
]


@pytest.mark.parametrize(("kind", "make", "k", "margin", "scale"), CASES)
def test_each_loss_is_its_formula_in_float64(kind, make, k, margin, scale) -> None:
    g = torch.Generator().manual_seed(0)
    loss = make(6, 5).double()
    x = torch.randn(20, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 6, (20,), generator=g)
    x[3] = loss.weight[int(y[3]) * k].detach() * 2.5  # on its class's weight: θ = 0
    x[4] = -loss.weight[int(y[4]) * k].detach()  # opposite: θ = π, the fallback branch
    reference_kind = "arcface" if kind == "subcenter" else kind
    expected = _reference(reference_kind, x, y, loss.weight.detach(), k, margin, scale)
    out = loss(x, y)
    # (sin θ is floored at 1e-6 where θ = 0: a difference of ~1e-8 there)
    assert float(out.loss) == pytest.approx(expected, rel=1e-7, abs=1e-9)
    assert set(out.stats) >= {"active_fraction", "mean_pos_dist", "mean_neg_dist", "n_valid"}


def _pml(kind: str, classes: int, dim: int):
    if kind == "arcface":
        return pml.ArcFaceLoss(classes, dim)
    if kind == "subcenter":
        return pml.SubCenterArcFaceLoss(num_classes=classes, embedding_size=dim)
    if kind == "cosface":
        return pml.CosFaceLoss(classes, dim)
    return pml.NormalizedSoftmaxLoss(classes, dim)


@pytest.mark.parametrize("kind", ["arcface", "subcenter", "cosface", "softmax"])
def test_each_loss_equals_pytorch_metric_learnings_with_the_same_weights(kind: str) -> None:
    g = torch.Generator().manual_seed(1)
    defaults = {"arcface": ArcFaceLoss, "subcenter": SubCenterArcFaceLoss, "cosface": CosFaceLoss,
                "softmax": NormalizedSoftmaxLoss}  # fmt: skip
    ours = defaults[kind](10, 16)
    theirs = _pml(kind, 10, 16)
    with torch.no_grad():
        theirs.W.copy_(ours.weight.T)  # PML keeps (D, C·K)
    x = torch.randn(64, 16, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    assert float(ours(x, y).loss) == pytest.approx(float(theirs(x, y)), rel=1e-4, abs=1e-4)


@pytest.mark.parametrize(("kind", "make", "k", "margin", "scale"), CASES)
def test_gradients_by_gradcheck(kind, make, k, margin, scale) -> None:
    g = torch.Generator().manual_seed(2)
    loss = make(3, 4).double()
    x = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1])
    assert torch.autograd.gradcheck(lambda z, w: _with_weight(loss, w, z, y), (x, loss.weight))


def _with_weight(loss, w, z, y):
    saved = loss.weight
    try:
        loss.weight = torch.nn.Parameter(w) if not isinstance(w, torch.nn.Parameter) else w
        return loss(z, y).loss
    finally:
        loss.weight = saved


@pytest.mark.parametrize(("kind", "make", "k", "margin", "scale"), CASES)
def test_degenerate_batches_give_finite_losses_and_gradients(kind, make, k, margin, scale) -> None:
    loss = make(4, 8)
    cases = {
        "one class": (torch.randn(6, 8), torch.zeros(6, dtype=torch.long)),
        "one example per class": (torch.randn(4, 8), torch.arange(4)),
        "duplicates": (torch.ones(5, 8), torch.tensor([0, 0, 1, 1, 2])),
        "zero embeddings": (torch.zeros(3, 8), torch.tensor([0, 1, 2])),
        "a batch of one": (torch.randn(1, 8), torch.tensor([3])),
    }
    with torch.no_grad():  # an embedding exactly on its class's weight: θ = 0
        cases["on the weight"] = (loss.weight[:1].clone() * 3, torch.tensor([0]))
    for name, (x, y) in cases.items():
        x = x.clone().requires_grad_(True)
        loss.zero_grad()
        out = loss(x, y)
        out.loss.backward()
        assert torch.isfinite(out.loss), name
        assert torch.isfinite(x.grad).all() and torch.isfinite(loss.weight.grad).all(), name
        assert all(math.isfinite(v) for v in out.stats.values()), name
    one = NormalizedSoftmaxLoss(1, 8)  # one class: nothing to tell apart, a loss of 0
    assert float(one(torch.randn(4, 8), torch.zeros(4, dtype=torch.long)).loss) == 0.0


def test_the_sub_centre_outlier_filter_is_pmls() -> None:
    g = torch.Generator().manual_seed(3)
    ours = SubCenterArcFaceLoss(5, 8)
    theirs = pml.SubCenterArcFaceLoss(num_classes=5, embedding_size=8)
    with torch.no_grad():
        theirs.W.copy_(ours.weight.T)
    x = torch.randn(80, 8, generator=g)
    y = torch.randint(0, 4, (80,), generator=g)  # class 4 has no images
    mine, centres = ours.outliers(x, y, threshold=60)
    expected, their_centres = theirs.get_outliers(x, y, threshold=60)
    assert sorted(mine.tolist()) == sorted(expected.tolist()) and mine.numel() > 0
    torch.testing.assert_close(centres[:4], their_centres.T[:4])
    assert (centres[4] == 0).all()


def test_settings_out_of_range_say_which() -> None:
    with pytest.raises(ConfigError, match="scale must be > 0"):
        ArcFaceLoss(3, 4, scale=0)
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        NormalizedSoftmaxLoss(3, 4, temperature=-1)
    with pytest.raises(ConfigError, match="num_classes, embedding_dim and centres >= 1"):
        CosFaceLoss(0, 4)
