"""Embeddings grouped by identity at the model's decision distance: `cluster_embeddings` runs
one of the algorithms and describes the result the way a person reviews it — clusters
numbered largest first, singletons kept apart, each member's distance to its cluster's
centre, and the members that sit between two clusters marked uncertain."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from siamese.clustering.algorithms import (
    ALGORITHMS,
    agglomerative,
    chinese_whispers,
    connected_components,
    hdbscan,
)
from siamese.clustering.neighbour_graph import DEFAULT_NEIGHBOURS, neighbour_graph
from siamese.errors import ConfigError

DEFAULT_ALGORITHM = "chinese-whispers"
"""The algorithm `siamese cluster` runs unless told otherwise: the best mean pairwise F1 over
the validation sets of `benchmarks/bench_cluster.py` (see BENCHMARKS.md, clustering)."""
SINGLETON = -1
"""The cluster label of a member that is a group of one."""


@dataclass(frozen=True)
class Clustering:
    """N embeddings grouped by identity.

    Attributes:
        labels: (N,) int64 cluster of each embedding, 0 … K−1 with 0 the largest (ties: the
            cluster whose first member comes first); `SINGLETON` (−1) for a group of one.
        sizes: (K,) int64 members of each cluster.
        centre_distances: (N,) float32 distance to its cluster's centre (the mean of its
            members' embeddings; unit vectors for cosine), on the model's metric; 0 for a
            singleton.
        alternative: (N,) int64 the nearest other cluster whose centre is within the
            threshold (the one the embedding could join instead), else −1.
        threshold: the decision distance the clustering used.
        algorithm: its name (`ALGORITHMS`).
        metric: the model's metric.
    """

    labels: np.ndarray
    sizes: np.ndarray
    centre_distances: np.ndarray
    alternative: np.ndarray
    threshold: float
    algorithm: str
    metric: str

    @property
    def clusters(self) -> int:
        """K: the number of clusters (groups of two or more)."""
        return int(self.sizes.size)

    @property
    def singletons(self) -> int:
        return int(np.count_nonzero(self.labels == SINGLETON))

    @property
    def uncertain(self) -> np.ndarray:
        """(N,) bool: it sits between two clusters (another's centre is within the threshold)."""
        return self.alternative >= 0

    def members(self, cluster: int) -> np.ndarray:
        """Indices of a cluster's members, nearest its centre first."""
        found = np.flatnonzero(self.labels == cluster)
        return found[np.argsort(self.centre_distances[found], kind="stable")]

    def every_cluster(self) -> list[np.ndarray]:
        """`members(k)` of every cluster k in one sort (K calls of `members` would read
        all N labels K times)."""
        order = np.lexsort((self.centre_distances, self.labels))
        bounds = np.searchsorted(self.labels[order], np.arange(self.clusters + 1))
        return [order[bounds[k] : bounds[k + 1]] for k in range(self.clusters)]

    def uncertain_per_cluster(self) -> np.ndarray:
        """(K,) int64 uncertain members of each cluster."""
        inside = self.labels >= 0
        return np.bincount(self.labels[inside & self.uncertain], minlength=self.clusters)


def cluster_embeddings(
    z: np.ndarray,
    metric: str,
    threshold: float,
    algorithm: str = DEFAULT_ALGORITHM,
    neighbours: int = DEFAULT_NEIGHBOURS,
    search: str = "auto",
    seed: int = 0,
) -> Clustering:
    """Group (N, D) embeddings whose distances are within `threshold` by `algorithm`.

    Args:
        z: (N, D) float32 embeddings of one model.
        metric: the model's metric ("euclidean", "sqeuclidean", "cosine").
        threshold: the decision distance, from the model's calibration (`Thresholds`) or the
            user's.
        algorithm: one of `ALGORITHMS`.
        neighbours: neighbours searched per embedding for the graph (`neighbour_graph`).
        search: "auto", "exact" or "faiss", the gallery's searches.
    Raises:
        ConfigError: an unknown algorithm, a bad threshold, scikit-learn missing where needed.
    """
    check_options(algorithm, neighbours, search)
    z = np.ascontiguousarray(np.asarray(z, dtype=np.float32))
    if z.ndim != 2:
        raise ConfigError(f"expected (N, D) embeddings, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ConfigError("the embeddings hold NaN or infinite values: check the model")
    graph = neighbour_graph(z, metric, threshold, neighbours, search)
    if algorithm == "hdbscan":
        groups = hdbscan(z, graph, metric)
    elif algorithm == "connected":
        groups = connected_components(graph)
    elif algorithm == "chinese-whispers":
        groups = chinese_whispers(graph, seed)
    else:
        groups = agglomerative(z, graph, metric, threshold, algorithm)
    return describe_groups(z, groups, metric, threshold, algorithm)


def check_options(algorithm: str, neighbours: int, search: str) -> None:
    """Raises ConfigError for an unknown algorithm or search, or fewer than 1 neighbour
    (checked before any photo is read, by `cluster_photos`)."""
    from siamese.clustering.neighbour_graph import search_kind

    if algorithm not in ALGORITHMS:
        raise ConfigError(
            f"clustering algorithm {algorithm!r} is unknown: use one of {', '.join(ALGORITHMS)}"
        )
    if neighbours < 1:
        raise ConfigError(f"neighbours must be >= 1, not {neighbours}")
    search_kind(search, 0)


def describe_groups(
    z: np.ndarray, groups: np.ndarray, metric: str, threshold: float, algorithm: str
) -> Clustering:
    """The `Clustering` of (N,) group labels (any integers; a label used once is a
    singleton): clusters renumbered largest first, centre distances, alternatives."""
    n = z.shape[0]
    groups = np.asarray(groups, dtype=np.int64)
    _, dense, counts = np.unique(groups, return_inverse=True, return_counts=True)
    dense = dense.reshape(-1)
    first_seen = np.full(counts.size, n, dtype=np.int64)
    np.minimum.at(first_seen, dense, np.arange(n))
    clustered = np.flatnonzero(counts >= 2)
    ranked = clustered[np.lexsort((first_seen[clustered], -counts[clustered]))]
    new_label = np.full(counts.size, SINGLETON, dtype=np.int64)
    new_label[ranked] = np.arange(ranked.size)
    labels = new_label[dense]
    sizes = counts[ranked].astype(np.int64)
    centres = _centres(z, labels, ranked.size, metric)
    own = np.zeros(n, dtype=np.float32)
    inside = labels >= 0
    own[inside] = _row_distances(z[inside], centres[labels[inside]], metric)
    alternative = _alternatives(z, labels, centres, metric, threshold)
    return Clustering(labels, sizes, own, alternative, float(threshold), algorithm, metric)


def _centres(z: np.ndarray, labels: np.ndarray, k: int, metric: str) -> np.ndarray:
    """(K, D) float32 mean embedding of each cluster (of unit vectors for cosine)."""
    x = _unit(z) if metric == "cosine" else z.astype(np.float64)
    sums = np.zeros((k, z.shape[1]), dtype=np.float64)
    inside = labels >= 0
    np.add.at(sums, labels[inside], x[inside])
    counts = np.bincount(labels[inside], minlength=k).astype(np.float64)
    return (sums / np.maximum(counts, 1.0)[:, None]).astype(np.float32)


def _alternatives(
    z: np.ndarray, labels: np.ndarray, centres: np.ndarray, metric: str, threshold: float
) -> np.ndarray:
    """(N,) the nearest cluster other than its own whose centre is within the threshold."""
    import torch

    from siamese.clustering.neighbour_graph import search_kind
    from siamese.recognition.gallery_search import make_search

    n, k = z.shape[0], centres.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    if k == 0 or n == 0:
        return out
    # FAISS's flat index (exact below 20,000 centres) for many faces: 4× faster at 100,000
    search = make_search(search_kind("auto", n), metric, "nearest", z.shape[1])
    ids = np.arange(k, dtype=np.int64)
    search.reset(centres, ids, ids)
    # The two nearest centres (−1 / inf where there is one cluster): the first that is not
    # the embedding's own.
    top = search.top(torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)), 2)
    ranked, distances = top.identity_ids.numpy(), top.distances.numpy()
    rows = np.arange(n)
    column = (ranked[:, 0] == labels).astype(np.int64)
    candidate, distance = ranked[rows, column], distances[rows, column]
    near = (candidate >= 0) & (distance <= threshold)
    out[near] = candidate[near]
    return out


def _unit(z: np.ndarray) -> np.ndarray:
    x = z.astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _row_distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """(M,) float32 distances of matching rows of (M, D) arrays on `metric`."""
    if metric == "cosine":
        return np.clip(1.0 - np.sum(_unit(a) * _unit(b), axis=1), 0.0, None).astype(np.float32)
    squared = np.sum(np.square(a.astype(np.float64) - b.astype(np.float64)), axis=1)
    return (squared if metric == "sqeuclidean" else np.sqrt(squared)).astype(np.float32)


__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "SINGLETON", "Clustering", "cluster_embeddings"]
