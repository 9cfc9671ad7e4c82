"""How well a clustering matches the true identities: pairwise precision / recall / F1 (of
all pairs put together, the share that are the same identity; of all same-identity pairs,
the share put together) and the BCubed F-measure (the same per item, so large identities do
not dominate), computed from the contingency table, never from the N² pairs."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ClusteringScores:
    """Scores of predicted groups against true labels (all in [0, 1])."""

    pairwise_precision: float
    pairwise_recall: float
    pairwise_f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f: float
    clusters_found: int
    true_identities: int
    singletons: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def clustering_scores(predicted: np.ndarray, truth: np.ndarray) -> ClusteringScores:
    """Scores of (N,) predicted labels against (N,) true labels.

    A negative predicted label is a singleton (each one its own group). Pairwise precision
    with no pair predicted is 1 (nothing wrong was put together); recall with no true pair
    is 1.
    """
    predicted = np.asarray(predicted, dtype=np.int64).copy()
    truth = np.asarray(truth, dtype=np.int64)
    if predicted.shape != truth.shape or predicted.ndim != 1:
        raise ValueError(f"labels of shapes {predicted.shape} and {truth.shape}")
    n = predicted.size
    alone = predicted < 0
    singletons = int(alone.sum())
    predicted[alone] = predicted.max(initial=0) + 1 + np.arange(singletons)
    if n == 0:
        return ClusteringScores(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0, 0, 0)
    _, p = np.unique(predicted, return_inverse=True)
    _, t = np.unique(truth, return_inverse=True)
    cells, counts = np.unique(p.reshape(-1) * (t.max() + 1) + t.reshape(-1), return_counts=True)
    cell_p, cell_t = cells // (t.max() + 1), cells % (t.max() + 1)
    size_p = np.bincount(p.reshape(-1)).astype(np.float64)
    size_t = np.bincount(t.reshape(-1)).astype(np.float64)
    c = counts.astype(np.float64)
    together = float(np.sum(c * (c - 1) / 2))
    predicted_pairs = float(np.sum(size_p * (size_p - 1) / 2))
    true_pairs = float(np.sum(size_t * (size_t - 1) / 2))
    precision = together / predicted_pairs if predicted_pairs else 1.0
    recall = together / true_pairs if true_pairs else 1.0
    b_precision = float(np.sum(c * c / size_p[cell_p]) / n)
    b_recall = float(np.sum(c * c / size_t[cell_t]) / n)
    return ClusteringScores(
        precision,
        recall,
        _f(precision, recall),
        b_precision,
        b_recall,
        _f(b_precision, b_recall),
        int(np.count_nonzero(size_p >= 2)),
        int(size_t.size),
        singletons,
    )


def _f(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
