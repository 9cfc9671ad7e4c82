"""The cross-batch memory (XBM, Wang et al. CVPR 2020): the ring buffer's semantics against a
one-example-at-a-time model, checkpoint round trips, the loss against a direct computation
(in-batch loss + loss against the concatenated past batches), gradients reaching the current
batch only, the wrapped pair and triplet losses, degenerate batches, option errors, and
pytorch-metric-learning's CrossBatchMemory where the two agree."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml
from pytorch_metric_learning import reducers as pml_reducers

from siamese.errors import ConfigError
from siamese.losses.arcface import ArcFaceLoss
from siamese.losses.contrastive import ContrastiveLoss
from siamese.losses.cross_batch_memory import CrossBatchMemory
from siamese.losses.output import LossOutput
from siamese.losses.triplet import TripletLoss

DIM = 6


def _batches(sizes, classes=5, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in sizes:
        x = torch.nn.functional.normalize(torch.randn(n, DIM, generator=g, dtype=dtype), dim=1)
        out.append((x, torch.randint(classes, (n,), generator=g)))
    return out


def _ring_model(sizes: list[int], size: int) -> tuple[list[int | None], int, int]:
    """The memory as one example at a time enters it: global example t goes to slot
    t mod size. Returns each slot's global example index (None: empty), filled, next."""
    slots: list[int | None] = [None] * size
    t = 0
    for n in sizes:
        for _ in range(n):
            slots[t % size] = t
            t += 1
    return slots, min(t, size), t % size


@pytest.mark.parametrize(
    ("sizes", "size"),
    [([2, 2, 2], 5), ([3, 4, 1, 5], 4), ([7], 3), ([2, 9, 1], 4), ([4, 4], 4), ([1] * 7, 3)],
)
def test_ring_semantics_wrap_around_and_oversize_batches(sizes, size) -> None:
    xbm = CrossBatchMemory(ContrastiveLoss(), DIM, size)
    batches = _batches(sizes)
    everything = torch.cat([x for x, _ in batches])
    all_labels = torch.cat([y for _, y in batches])
    for x, y in batches:
        xbm(x, y)
    slots, filled, next_slot = _ring_model(sizes, size)
    assert int(xbm.memory_filled) == xbm._filled == filled
    assert int(xbm.memory_next) == xbm._next == next_slot
    for slot, t in enumerate(slots):
        if t is None:
            assert slot >= filled
            continue
        assert slot < filled
        torch.testing.assert_close(xbm.memory_embeddings[slot], everything[t], rtol=0, atol=0)
        assert int(xbm.memory_labels[slot]) == int(all_labels[t])
    assert xbm.memory_embeddings.shape == (size, DIM)  # bounded by size


def test_buffers_are_persistent_and_typed() -> None:
    xbm = CrossBatchMemory(TripletLoss(), DIM, 8)
    state = xbm.state_dict()
    assert {"memory_embeddings", "memory_labels", "memory_filled", "memory_next"} <= set(state)
    assert state["memory_embeddings"].dtype == torch.float32
    assert state["memory_labels"].dtype == torch.int64
    assert state["memory_filled"].shape == () and state["memory_filled"].dtype == torch.int64
    assert state["memory_next"].shape == () and state["memory_next"].dtype == torch.int64
    # bf16 embeddings (autocast) are stored as float32
    xbm(torch.randn(3, DIM).bfloat16(), torch.tensor([0, 0, 1]))
    assert xbm.memory_embeddings.dtype == torch.float32


@pytest.mark.parametrize(
    "make_inner", [lambda: ContrastiveLoss(), lambda: TripletLoss(mining="all")]
)
def test_state_dict_round_trip_resumes_identically(make_inner) -> None:
    batches = _batches([6, 5, 6, 4, 6, 6, 5, 6], seed=3)
    a = CrossBatchMemory(make_inner(), DIM, 13)
    for x, y in batches[:3]:
        a(x, y)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b = CrossBatchMemory(make_inner(), DIM, 13)
    b(*_batches([4], seed=99)[0])  # some other state, overwritten by the load
    b.load_state_dict(torch.load(buffer))
    assert (b._filled, b._next) == (a._filled, a._next) == (13, 17 % 13)
    for x, y in batches[3:]:
        la, lb = a(x, y).loss, b(x, y).loss
        assert la.item() == lb.item()
    for name in ("memory_embeddings", "memory_labels", "memory_filled", "memory_next"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert (b._filled, b._next) == (a._filled, a._next)


def test_a_loaded_empty_memory_is_empty_again() -> None:
    fresh = CrossBatchMemory(ContrastiveLoss(), DIM, 5).state_dict()
    xbm = CrossBatchMemory(ContrastiveLoss(), DIM, 5)
    for x, y in _batches([3, 3]):
        xbm(x, y)
    xbm.load_state_dict(copy.deepcopy(fresh))
    assert (xbm._filled, xbm._next) == (0, 0)
    x, y = _batches([4], seed=5)[0]
    assert xbm(x, y).loss.item() == pytest.approx(ContrastiveLoss()(x, y).loss.item())


def test_a_state_that_does_not_fit_is_refused() -> None:
    state = CrossBatchMemory(ContrastiveLoss(), DIM, 5).state_dict()
    state["memory_filled"] = torch.tensor(9)
    with pytest.raises(ValueError, match="out of range"):
        CrossBatchMemory(ContrastiveLoss(), DIM, 5).load_state_dict(state)
    with pytest.raises(RuntimeError, match="size mismatch"):
        CrossBatchMemory(ContrastiveLoss(), DIM, 6).load_state_dict(
            CrossBatchMemory(ContrastiveLoss(), DIM, 5).state_dict()
        )


INNER_LOSSES = [
    lambda: ContrastiveLoss(),
    lambda: ContrastiveLoss(margin=1.5, pos_margin=0.2, metric="sqeuclidean"),
    lambda: ContrastiveLoss(metric="cosine"),
    lambda: TripletLoss(margin=0.3, mining="all"),
    lambda: TripletLoss(margin=0.3, mining="hard"),
    lambda: TripletLoss(margin=0.3, mining="semihard"),
    lambda: TripletLoss(mining="all", soft=True),
]


def _direct(inner, x, y, past):
    """inner(batch) + inner(batch, ref = the past batches' newest examples), written out."""
    loss = inner(x, y).loss
    if past:
        rx = torch.cat([p for p, _ in past]).detach()
        ry = torch.cat([q for _, q in past])
        loss = loss + inner(x, y, rx, ry).loss
    return loss


@pytest.mark.parametrize("make_inner", INNER_LOSSES)
def test_equals_the_direct_computation_and_grads_reach_the_batch_only(make_inner) -> None:
    # The memory (size 40) never wraps here, so its filled slots are the past batches in
    # order: the direct computation's reference set is exactly their concatenation.
    inner = make_inner()
    xbm = CrossBatchMemory(inner, DIM, 40)
    past: list[tuple[torch.Tensor, torch.Tensor]] = []
    for x, y in _batches([8, 6, 8, 8, 7], seed=7):
        x1 = x.clone().requires_grad_(True)
        x2 = x.clone().requires_grad_(True)
        got = xbm(x1, y)
        want = _direct(inner, x2, y, past)
        assert got.loss.item() == pytest.approx(want.item(), abs=1e-6)
        got.loss.backward()
        want.backward()
        torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-6)
        assert not xbm.memory_embeddings.requires_grad
        assert xbm.memory_embeddings.grad_fn is None and xbm.memory_embeddings.grad is None
        assert got.stats["memory_fraction"] == pytest.approx(sum(len(p) for p, _ in past) / 40)
        past.append((x, y))


@pytest.mark.parametrize("make_inner", INNER_LOSSES)
def test_a_full_ring_is_the_newest_past_examples(make_inner) -> None:
    # Once the ring wraps its slots are rotated; the losses here do not depend on the order
    # of the reference set, so the direct computation takes the newest `size` in time order.
    inner = make_inner()
    size = 15
    xbm = CrossBatchMemory(inner, DIM, size)
    seen_x: list[torch.Tensor] = []
    seen_y: list[torch.Tensor] = []
    for x, y in _batches([6, 7, 6, 8, 5, 6], seed=11):
        x1 = x.clone().requires_grad_(True)
        x2 = x.clone().requires_grad_(True)
        got = xbm(x1, y)
        past = [(torch.cat(seen_x)[-size:], torch.cat(seen_y)[-size:])] if seen_x else []
        want = _direct(inner, x2, y, past)
        assert got.loss.item() == pytest.approx(want.item(), abs=1e-5)
        got.loss.backward()
        want.backward()
        torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-6)
        seen_x.append(x)
        seen_y.append(y)


def test_the_first_step_is_the_in_batch_loss_and_stats() -> None:
    x, y = _batches([10], seed=2)[0]
    inner = TripletLoss(mining="all")
    got = CrossBatchMemory(inner, DIM, 16)(x, y)
    want = inner(x, y)
    assert got.loss.item() == want.loss.item()
    assert {k: v for k, v in got.stats.items() if k != "memory_fraction"} == want.stats
    assert got.stats["memory_fraction"] == 0.0
    assert all(t.ndim == 0 and not t.requires_grad for t in got.stat_tensors.values())


def test_eval_mode_reads_the_memory_without_writing_it() -> None:
    xbm = CrossBatchMemory(ContrastiveLoss(), DIM, 10)
    (x0, y0), (x1, y1) = _batches([4, 5], seed=4)
    xbm(x0, y0)
    before = {k: v.clone() for k, v in xbm.state_dict().items()}
    xbm.eval()
    out = xbm(x1, y1)
    want = ContrastiveLoss()(x1, y1).loss + ContrastiveLoss()(x1, y1, x0, y0).loss
    assert out.loss.item() == pytest.approx(want.item())
    assert all(torch.equal(before[k], v) for k, v in xbm.state_dict().items())
    assert (xbm._filled, xbm._next) == (4, 4)


def test_memory_classes_absent_from_the_batch_are_negatives_only() -> None:
    xbm = CrossBatchMemory(ContrastiveLoss(margin=2.0), DIM, 8)
    (x0, _), (x1, _) = _batches([5, 4], seed=6)
    xbm(x0, torch.full((5,), 7))
    out = xbm(x1, torch.tensor([0, 0, 1, 1]))
    negatives = ContrastiveLoss(margin=2.0)(x1, torch.tensor([0, 0, 1, 1]), x0, torch.full((5,), 7))
    assert negatives.stats["mean_pos_dist"] == 0.0  # no genuine pair with the memory
    want = ContrastiveLoss(margin=2.0)(x1, torch.tensor([0, 0, 1, 1])).loss + negatives.loss
    assert out.loss.item() == pytest.approx(want.item())


DEGENERATE = [
    (torch.randn(1, DIM), torch.tensor([0])),  # batch of one
    (torch.randn(5, DIM), torch.zeros(5, dtype=torch.long)),  # one class
    (torch.zeros(4, DIM), torch.tensor([0, 0, 1, 1])),  # zero embeddings
    (torch.ones(4, DIM), torch.tensor([0, 1, 0, 1])),  # duplicated embeddings
    (torch.randn(4, DIM), torch.tensor([0, 1, 2, 3])),  # no positives
]


@pytest.mark.parametrize("make_inner", INNER_LOSSES)
def test_degenerate_batches_stay_finite(make_inner) -> None:
    xbm = CrossBatchMemory(make_inner(), DIM, 6)
    for x, y in [*DEGENERATE, *DEGENERATE]:  # the second round meets them in the memory
        x = x.clone().requires_grad_(True)
        out = xbm(x, y)
        assert torch.isfinite(out.loss)
        out.loss.backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        assert all(v == v for v in out.stats.values())


def test_option_errors() -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match=r"loss\.memory"):
            CrossBatchMemory(ContrastiveLoss(), DIM, bad)
    with pytest.raises(ConfigError, match="embedding_dim"):
        CrossBatchMemory(ContrastiveLoss(), 0, 4)

    class NoReference(torch.nn.Module):
        def forward(self, embeddings, labels):
            return LossOutput(loss=embeddings.sum())

    for loss in (NoReference(), ArcFaceLoss(3, DIM)):
        with pytest.raises(ConfigError, match="reference set"):
            CrossBatchMemory(loss, DIM, 4)


def test_the_generator_is_the_wrapped_losss() -> None:
    inner = TripletLoss(mining="random")
    xbm = CrossBatchMemory(inner, DIM, 4)
    g = torch.Generator().manual_seed(1)
    xbm.generator = g
    assert inner.generator is g and xbm.generator is g


# pytorch-metric-learning's CrossBatchMemory enqueues the batch *before* computing, and then
# computes one loss of the batch against the whole memory (the batch included, detached,
# self-pairs removed). Ours, like the XBM authors' code, computes the in-batch loss and the
# loss against the earlier batches as two terms and adds them, then enqueues. They agree when
# (1) PML's memory is larger by one batch (it holds the current batch too), and (2) the wrapped
# loss is a sum over pairs, so that splitting the pairs into in-batch and memory pairs does
# not change the total. With mean-reduced losses (ours, PML's defaults) they differ by design:
# PML averages over the pooled pairs, XBM adds the two means. Gradients also differ: in PML
# the in-batch pairs reach the batch through the anchor only (the memory copy is detached);
# here through both examples, as in-batch pairs always do.


class _PMLPairSum(torch.nn.Module):
    """PML's contrastive loss (not squared), summed over pairs, in our loss interface."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = _pml_contrastive_sum()

    def forward(self, embeddings, labels, ref_embeddings=None, ref_labels=None) -> LossOutput:
        loss = self.inner(embeddings, labels, ref_emb=ref_embeddings, ref_labels=ref_labels)
        return LossOutput(loss=loss)


def _pml_contrastive_sum():
    return pml.ContrastiveLoss(
        pos_margin=0.1,
        neg_margin=1.2,
        distance=pml_distances.LpDistance(normalize_embeddings=False),
        reducer=pml_reducers.SumReducer(),
    )


def test_equals_pmls_cross_batch_memory_for_a_sum_over_pairs() -> None:
    size, batch = 10, 4
    ours = CrossBatchMemory(_PMLPairSum(), DIM, size)
    theirs = pml.CrossBatchMemory(_pml_contrastive_sum(), DIM, memory_size=size + batch)
    for step, (x, y) in enumerate(_batches([batch] * 7, classes=3, seed=8)):
        got = ours(x, y).loss.item()
        want = theirs(x, y).item()
        assert got == pytest.approx(want, rel=1e-5), step
        # Theirs also holds the current batch: its other entries are our memory.
        assert int(theirs.queue_idx) == (step + 1) * batch % (size + batch)


@pytest.mark.parametrize(("sizes", "size"), [([3, 3, 3, 3], 7), ([5, 2, 5, 5, 1], 6)])
def test_the_ring_is_pmls_ring(sizes, size) -> None:
    # For batches no larger than the memory (PML refuses larger ones), both write example t
    # of the stream to slot t mod size.
    ours = CrossBatchMemory(ContrastiveLoss(), DIM, size)
    theirs = pml.CrossBatchMemory(pml.ContrastiveLoss(), DIM, memory_size=size)
    for x, y in _batches(sizes, seed=9):
        ours(x, y)
        theirs(x, y)
        assert int(ours.memory_next) == theirs.queue_idx
        filled = size if theirs.has_been_filled else theirs.queue_idx
        assert int(ours.memory_filled) == filled
        torch.testing.assert_close(
            ours.memory_embeddings[:filled], theirs.embedding_memory[:filled]
        )
        assert torch.equal(ours.memory_labels[:filled], theirs.label_memory[:filled])
