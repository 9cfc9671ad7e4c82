"""ContrastiveLoss's blocked computation (value, statistics and gradient computed together a
block of rows at a time, the gradient attached to the embeddings): against autograd through
the distance matrix for every metric, with and without a reference set (gradients on both
sides), across block boundaries, by gradcheck, and on labels that a float cast would merge."""

from __future__ import annotations

import pytest
import torch

from siamese.distances import pairwise_distances
from siamese.losses import contrastive
from siamese.losses.contrastive import ContrastiveLoss

METRICS = ("euclidean", "sqeuclidean", "cosine")


def _autograd_reference(x, y, margin, pos_margin, metric, rx=None, ry=None):
    """Mean over pairs of the contrastive terms, by autograd through `pairwise_distances`,
    and the statistics, computed plainly from the distance matrix."""
    d = pairwise_distances(x, rx, metric)
    same = y[:, None] == (y if ry is None else ry)[None, :]
    terms = torch.where(same, torch.relu(d - pos_margin) ** 2, torch.relu(margin - d) ** 2)
    valid = torch.ones_like(same)
    if rx is None:
        valid.fill_diagonal_(False)
    n = valid.sum().clamp_min(1).double()
    dd = d.detach()
    stats = {
        "active_fraction": float(((terms.detach() > 0) & valid).sum() / n),
        "mean_pos_dist": float(dd[same & valid].sum() / (same & valid).sum().clamp_min(1)),
        "mean_neg_dist": float(dd[~same].sum() / (~same).sum().clamp_min(1)),
    }
    return terms[valid].sum() / n, stats


def _data(n=23, r=None, dim=5, seed=0, dtype=torch.float64, duplicates=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=dtype)
    y = torch.randint(4, (n,), generator=g)
    if duplicates:
        x[3] = x[5]  # a duplicated pair (distance 0, up to rounding), genuine or not
        x[6] = x[8]
    if r is None:
        return x, y, None, None
    rx = torch.randn(r, dim, generator=g, dtype=dtype)
    ry = torch.randint(5, (r,), generator=g)
    if duplicates:
        rx[2] = x[1]  # a reference equal to a batch row
    return x, y, rx, ry


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(("margin", "pos_margin"), [(1.0, 0.0), (2.5, 0.7)])
@pytest.mark.parametrize("refs", [None, 9])
@pytest.mark.parametrize("duplicates", [False, True])
def test_equals_autograd_through_the_distances(metric, margin, pos_margin, refs, duplicates):
    # Duplicated rows are at distance 0 up to rounding (the Gram matrix's cancellation, a
    # little different in the two computations), so they are compared more loosely.
    tol = 1e-6 if duplicates else 1e-12
    x, y, rx, ry = _data(r=refs, duplicates=duplicates)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    r1 = r2 = None
    if rx is not None:
        r1, r2 = rx.clone().requires_grad_(True), rx.clone().requires_grad_(True)
    got = ContrastiveLoss(margin, metric, pos_margin)(x1, y, r1, ry)
    want, stats = _autograd_reference(x2, y, margin, pos_margin, metric, r2, ry)
    assert got.loss.item() == pytest.approx(want.item(), rel=tol, abs=tol)
    for name, value in stats.items():
        assert got.stats[name] == pytest.approx(value, rel=tol, abs=tol), name
    got.loss.backward()
    want.backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=tol * 100, atol=tol)
    if rx is not None:
        torch.testing.assert_close(r1.grad, r2.grad, rtol=tol * 100, atol=tol)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("refs", [None, 6])
def test_gradcheck(metric, refs) -> None:
    x, y, rx, ry = _data(n=7, r=refs, dim=3, seed=1)
    loss = ContrastiveLoss(margin=2.0, metric=metric, pos_margin=0.3)
    if rx is None:
        assert torch.autograd.gradcheck(lambda e: loss(e, y).loss, (x.requires_grad_(True),))
    else:
        inputs = (x.requires_grad_(True), rx.requires_grad_(True))
        assert torch.autograd.gradcheck(lambda e, r: loss(e, y, r, ry).loss, inputs)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("refs", [None, 37])
def test_blocks_of_rows_give_the_one_block_result(monkeypatch, metric, refs) -> None:
    x, y, rx, ry = _data(n=29, r=refs, dim=4, seed=2, dtype=torch.float32, duplicates=True)
    results = []
    for rows in (1000, 3):  # one block; then blocks of 3 rows (the last one shorter)
        monkeypatch.setattr(contrastive, "_CPU_BLOCK_ELEMENTS", rows)
        monkeypatch.setattr(contrastive, "_CPU_MIN_BLOCK_ROWS", rows)
        xx = x.clone().requires_grad_(True)
        out = ContrastiveLoss(1.3, metric, 0.2)(xx, y, rx, ry)
        out.loss.backward()
        results.append((out.loss.item(), out.stats, xx.grad))
    (l1, s1, g1), (l2, s2, g2) = results
    assert l2 == pytest.approx(l1, rel=1e-6)
    assert s2 == pytest.approx(s1, rel=1e-6)
    torch.testing.assert_close(g2, g1, rtol=1e-5, atol=1e-7)


def test_labels_are_compared_exactly() -> None:
    # 2**40 and 2**40 + 1 are one float32 value: compared as floats they would be one class.
    base = 2**40
    y = torch.tensor([base, base + 1, base, base + 1, -5, -5])
    x = torch.randn(6, 3, dtype=torch.float64)
    want, _ = _autograd_reference(x, y, 1.0, 0.0, "euclidean")
    assert ContrastiveLoss()(x, y).loss.item() == pytest.approx(want.item(), rel=1e-12)
    ry = torch.tensor([base + 1, 7, base])
    rx = torch.randn(3, 3, dtype=torch.float64)
    want, _ = _autograd_reference(x, y, 1.0, 0.0, "euclidean", rx, ry)
    assert ContrastiveLoss()(x, y, rx, ry).loss.item() == pytest.approx(want.item(), rel=1e-12)


def test_input_dtypes_and_grad_modes() -> None:
    x, y, rx, ry = _data(n=8, r=5, dtype=torch.float32)
    half = x.bfloat16().requires_grad_(True)
    out = ContrastiveLoss()(half, y)
    assert out.loss.dtype == torch.float32
    out.loss.backward()
    assert half.grad.dtype == torch.bfloat16 and torch.isfinite(half.grad.float()).all()
    with torch.no_grad():
        plain = ContrastiveLoss()(x, y, rx, ry).loss
    assert plain.item() == pytest.approx(ContrastiveLoss()(x, y, rx, ry).loss.item())
    # a reference set without gradient (a memory): only the batch gets one
    xx = x.clone().requires_grad_(True)
    ContrastiveLoss()(xx, y, rx, ry).loss.backward()
    assert xx.grad is not None and rx.grad is None


def test_an_empty_reference_set_gives_zero() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    out = ContrastiveLoss()(x, torch.tensor([0, 1, 0, 1]), torch.zeros(0, 3), torch.zeros(0).long())
    assert out.loss.item() == 0.0
    out.loss.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
