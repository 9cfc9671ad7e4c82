"""Retrieval metrics against plain-loop float64 references, pytorch-metric-learning, and
the chunking/memory contract."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

import siamese.evaluation.retrieval as retrieval
from siamese.errors import ConfigError, DataError
from siamese.evaluation.retrieval import (
    answerable_queries,
    knn_accuracy,
    map_at_r,
    nearest_neighbours,
    precision_at_1,
    r_precision,
    recall_at_k,
    retrieval_metrics,
)


def _distance64(a: torch.Tensor, b: torch.Tensor, metric: str) -> float:
    a, b = a.double(), b.double()
    if metric == "cosine":
        return 1.0 - float(a @ b) / max(float(a.norm() * b.norm()), 1e-300)
    squared = float(((a - b) ** 2).sum())
    return squared if metric == "sqeuclidean" else math.sqrt(squared)


def _reference(x, y, gx, gy, metric, ks, knn_k):
    """Every metric as a plain loop over queries, float64, ties by (distance, index)."""
    loo = gx is None
    gx, gy = (x, y) if loo else (gx, gy)
    p1, rp, ap, recall, knn, answerable = [], [], [], {k: [] for k in ks}, [], 0
    for i in range(len(x)):
        candidates = [j for j in range(len(gx)) if not (loo and j == i)]
        order = sorted(candidates, key=lambda j: (_distance64(x[i], gx[j], metric), j))
        ranked = [int(gy[j]) for j in order]
        label = int(y[i])
        vote = Counter(ranked[:knn_k])
        best = max(vote.values())
        knn.append(next(c for c in ranked[:knn_k] if vote[c] == best) == label)
        r = sum(1 for j in candidates if int(gy[j]) == label)
        if r == 0:
            continue
        answerable += 1
        rel = [c == label for c in ranked]
        p1.append(rel[0])
        rp.append(sum(rel[:r]) / r)
        ap.append(sum(sum(rel[: i + 1]) / (i + 1) for i in range(r) if rel[i]) / r)
        for k in ks:
            recall[k].append(any(rel[:k]))

    def mean(v):
        return sum(v) / len(v)

    return {
        "precision_at_1": mean(p1),
        "r_precision": mean(rp),
        "map_at_r": mean(ap),
        "recall_at_k": {k: mean(v) for k, v in recall.items()},
        "knn_accuracy": mean(knn),
        "queries": answerable,
        "left_out": len(x) - answerable,
    }


def _grid_set(n: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Small-integer embeddings: many exact distance ties and duplicated points, exact in
    float32 too (so the float32 ranking equals the float64 one)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 3, (n, 3), generator=g).float()
    x[n // 2 : n // 2 + 4] = x[:4]  # duplicated points
    y = torch.randint(0, classes, (n,), generator=g)
    y[-1] = classes + 7  # a class with a single item
    return x, y


def _continuous_set(n: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=g), torch.randint(0, classes, (n,), generator=g)


def _assert_report(report, expected):
    for name in ("precision_at_1", "r_precision", "map_at_r", "knn_accuracy"):
        assert getattr(report, name) == pytest.approx(expected[name], abs=1e-12), name
    assert report.recall_at_k == pytest.approx(expected["recall_at_k"], abs=1e-12)
    assert (report.queries, report.left_out) == (expected["queries"], expected["left_out"])


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("with_reference", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_retrieval_metrics_match_loop_reference(metric, with_reference, seed):
    make = _continuous_set if metric == "cosine" else _grid_set
    x, y = make(50, 5, seed)
    y[-1] = 99  # a class with a single item
    gx = gy = None
    if with_reference:
        gx, gy = make(40, 4, seed + 100)  # queries of classes 4 and 12 have no gallery item
    ks, knn_k = (1, 3, 10), 4
    report = retrieval_metrics(x, y, gx, gy, metric, recall_ks=ks, knn_k=knn_k)
    expected = _reference(x, y, gx, gy, metric, ks, knn_k)
    _assert_report(report, expected)
    assert report.left_out > 0 and report.knn_k == knn_k
    # The single-metric functions agree with the shared pass.
    assert precision_at_1(x, y, gx, gy, metric) == pytest.approx(expected["precision_at_1"])
    assert r_precision(x, y, gx, gy, metric) == pytest.approx(expected["r_precision"])
    assert map_at_r(x, y, gx, gy, metric) == pytest.approx(expected["map_at_r"])
    assert recall_at_k(x, y, gx, gy, metric, k=3) == pytest.approx(expected["recall_at_k"][3])
    assert knn_accuracy(x, y, gx, gy, metric, k=knn_k) == pytest.approx(expected["knn_accuracy"])


def test_float64_embeddings_match_reference():
    x, y = _continuous_set(30, 3, 5)
    expected = _reference(x, y, None, None, "euclidean", (2,), 3)
    _assert_report(retrieval_metrics(x.double(), y, recall_ks=(2,), knn_k=3), expected)


def test_ties_go_to_the_lower_gallery_index():
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    query = torch.zeros(1, 2)  # equidistant from all four
    for first in range(4):
        labels = torch.full((4,), 9)
        labels[first] = 1
        hit = precision_at_1(query, torch.tensor([1]), gallery, labels)
        assert hit == (1.0 if first == 0 else 0.0)
    # R-precision with R = 2 counts the two lowest indices among the tied items.
    labels = torch.tensor([1, 9, 1, 9])
    assert r_precision(query, torch.tensor([1]), gallery, labels) == 0.5
    labels = torch.tensor([1, 1, 9, 9])
    assert r_precision(query, torch.tensor([1]), gallery, labels) == 1.0


def test_knn_vote_tie_goes_to_the_nearest_tied_class():
    gallery = torch.tensor([[1.0], [2.0], [3.0], [4.0], [5.0]])
    query = torch.zeros(1, 1)
    labels = torch.tensor([7, 8, 8, 7, 5])  # k=4: 7 and 8 tie with two votes; 7 is nearest
    assert knn_accuracy(query, torch.tensor([7]), gallery, labels, k=4) == 1.0
    assert knn_accuracy(query, torch.tensor([8]), gallery, labels, k=4) == 0.0
    assert knn_accuracy(query, torch.tensor([8]), gallery, labels, k=3) == 1.0  # 8 wins 2:1
    # A query whose class is absent from the gallery is counted, and wrong.
    assert knn_accuracy(query, torch.tensor([3]), gallery, labels, k=1) == 0.0


def test_equals_pytorch_metric_learning_accuracy_calculator():
    pml_accuracy = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.inference import CustomKNN

    # faiss is not a dependency: PML's exact torch kNN instead, on unnormalised embeddings.
    calculator = pml_accuracy.AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count",
        knn_func=CustomKNN(LpDistance(normalize_embeddings=False)),
        device=torch.device("cpu"),
    )
    for seed, (n, m, classes) in enumerate([(200, 0, 6), (150, 0, 40), (120, 300, 8)]):
        x, y = _continuous_set(n, classes, seed)  # no ties: orders are the same
        if m:
            gx, gy = _continuous_set(m, classes, seed + 50)
            pml = calculator.get_accuracy(x, y, gx, gy, ref_includes_query=False)
        else:
            gx = gy = None
            pml = calculator.get_accuracy(x, y, x, y, ref_includes_query=True)
        ours = retrieval_metrics(x, y, gx, gy, "euclidean")
        assert ours.precision_at_1 == pytest.approx(pml["precision_at_1"], abs=1e-12)
        assert ours.r_precision == pytest.approx(pml["r_precision"], abs=1e-12)
        assert ours.map_at_r == pytest.approx(pml["mean_average_precision_at_r"], abs=1e-12)


@pytest.mark.parametrize("with_reference", [False, True])
def test_tiny_blocks_give_the_same_report(with_reference):
    x, y = _grid_set(70, 4, 3)
    gx, gy = _grid_set(45, 4, 4) if with_reference else (None, None)
    whole = retrieval_metrics(x, y, gx, gy, recall_ks=(1, 4), knn_k=3, block_rows=10_000)
    for rows in (1, 7):
        assert retrieval_metrics(x, y, gx, gy, recall_ks=(1, 4), knn_k=3, block_rows=rows) == whole


def test_retrieval_never_holds_an_n_by_n_matrix(monkeypatch):
    import siamese.distances

    shapes: list[tuple[int, int]] = []
    original = siamese.distances.pairwise_distances

    def recording(*args, **kwargs):
        block = original(*args, **kwargs)
        shapes.append(tuple(block.shape))
        return block

    limit = 2**16
    monkeypatch.setattr(siamese.distances, "pairwise_distances", recording)
    monkeypatch.setattr(retrieval, "BLOCK_ELEMENTS", limit)
    x, y = _continuous_set(3000, 50, 0)
    report = retrieval_metrics(x, y)
    assert len(shapes) > 1 and sum(r for r, _ in shapes) == 3000
    assert all(rows * cols <= limit for rows, cols in shapes)
    assert 0.0 <= report.map_at_r <= report.r_precision <= 1.0


def test_single_class_and_one_item_classes():
    x, _ = _continuous_set(12, 1, 0)
    one_class = torch.zeros(12, dtype=torch.long)
    report = retrieval_metrics(x, one_class)
    assert report.precision_at_1 == report.r_precision == report.map_at_r == 1.0
    assert report.knn_accuracy == 1.0 and (report.queries, report.left_out) == (12, 0)

    singletons = torch.arange(12)
    for fn in (precision_at_1, r_precision, map_at_r):
        with pytest.raises(DataError, match="single example"):
            fn(x, singletons)
    with pytest.raises(DataError, match="single example"):
        recall_at_k(x, singletons, k=2)
    with pytest.raises(DataError, match="no query can be answered"):
        retrieval_metrics(x, singletons)
    with pytest.raises(DataError, match="gallery"):
        precision_at_1(x, singletons, x, singletons + 100)
    assert knn_accuracy(x, singletons, k=3) == 0.0  # every query counted, and wrong


def test_user_errors():
    x, y = _continuous_set(10, 2, 0)
    with pytest.raises(ConfigError, match="between 1 and 9"):
        recall_at_k(x, y, k=10)  # leave-one-out: 9 others
    with pytest.raises(ConfigError, match="between 1 and 10"):
        knn_accuracy(x, y, x, y, k=11)
    with pytest.raises(ConfigError):
        knn_accuracy(x, y, k=0)
    with pytest.raises(ConfigError):
        retrieval_metrics(x, y, recall_ks=(1, 50))
    with pytest.raises(ConfigError, match="unknown metric"):
        precision_at_1(x, y, metric="manhattan")
    with pytest.raises(ConfigError, match="together"):
        precision_at_1(x, y, x, None)
    with pytest.raises(DataError, match="non-empty"):
        precision_at_1(torch.empty(0, 4), torch.empty(0, dtype=torch.long))
    with pytest.raises(DataError, match="non-empty"):
        precision_at_1(x, y, torch.empty(0, 8), torch.empty(0, dtype=torch.long))
    with pytest.raises(DataError, match="one label per embedding"):
        map_at_r(x, y[:-1])
    with pytest.raises(DataError, match="one label per embedding"):
        map_at_r(x, y, x, y[:3])
    with pytest.raises(DataError, match="same model"):
        map_at_r(x, y, x[:, :4], y)
    with pytest.raises(DataError, match="integers"):
        map_at_r(x, y.float())
    with pytest.raises(DataError, match="empty gallery"):
        precision_at_1(x[:1], y[:1])
    for bad in (float("nan"), float("inf")):
        broken = x.clone()
        broken[3, 1] = bad
        with pytest.raises(DataError, match="NaN or infinite"):
            r_precision(broken, y)
        with pytest.raises(DataError, match="NaN or infinite"):
            r_precision(x, y, broken, y)


def test_no_nan_with_zero_vectors_and_duplicates():
    x = torch.zeros(8, 4)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    for metric in ("euclidean", "sqeuclidean", "cosine"):
        report = retrieval_metrics(x, y, metric=metric, recall_ks=(1, 7), knn_k=7)
        values = [report.precision_at_1, report.r_precision, report.map_at_r, report.knn_accuracy]
        values += list(report.recall_at_k.values())
        assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values)
        assert report.recall_at_k[7] == 1.0


def test_existing_helpers_keep_working():
    x, y = _grid_set(40, 4, 2)
    y[0] = 99
    keep = answerable_queries(y)
    assert not bool(keep[0]) and not bool(keep[-1]) and int(keep.sum()) == 38  # two lone
    assert answerable_queries(y, torch.tensor([99])).tolist() == [True] + [False] * 39
    nearest = nearest_neighbours(x)
    assert bool((nearest != torch.arange(40)).all())
    hits = (y[nearest] == y)[keep].double().mean()
    # nearest_neighbours breaks ties by the lowest index, like the metrics.
    assert precision_at_1(x, y) == pytest.approx(float(hits))
