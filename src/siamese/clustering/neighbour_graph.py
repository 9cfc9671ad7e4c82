"""The graph clustering works on: an edge between two embeddings whose distance is within the
decision threshold, among each one's k nearest neighbours.

The neighbours come from the gallery's own search (`siamese.recognition.gallery_search`: exact
blocked matrix products, or FAISS for large sets), with each embedding its own identity, so
memory stays at (N, k) results and one block of distances, never an N × N matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from siamese.errors import ConfigError

DEFAULT_NEIGHBOURS = 32
"""Neighbours searched per embedding: a cluster larger than this stays connected through its
members' neighbours, so it bounds the edges kept, not the size of a cluster."""
FAISS_FROM = 20_000
"""With search "auto", the number of embeddings from which FAISS is used (when installed)."""


@dataclass(frozen=True)
class NeighbourGraph:
    """Undirected edges between embeddings within `radius` of each other.

    Attributes:
        size: N, the number of embeddings (nodes 0 … N−1).
        first, second: (E,) int64 end points of each edge, first < second, each edge once.
        distances: (E,) float32 distance of each edge, on the model's metric.
        radius: the largest distance an edge may have.
    """

    size: int
    first: np.ndarray
    second: np.ndarray
    distances: np.ndarray
    radius: float

    @property
    def edges(self) -> int:
        return int(self.first.size)

    def directed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every edge in both directions, sorted by source: (2E,) sources, targets, distances."""
        sources = np.concatenate([self.first, self.second])
        targets = np.concatenate([self.second, self.first])
        distances = np.concatenate([self.distances, self.distances])
        order = np.argsort(sources, kind="stable")
        return sources[order], targets[order], distances[order]

    def sparse(self):  # -> scipy.sparse.csr_matrix
        """The symmetric (N, N) scipy CSR matrix of edge distances (absent: no edge)."""
        from scipy.sparse import coo_matrix

        sources, targets, distances = self.directed()
        # A zero distance is a real edge: store it as the smallest positive float so the
        # sparse structure keeps it.
        values = np.maximum(distances.astype(np.float64), np.finfo(np.float64).tiny)
        return coo_matrix((values, (sources, targets)), shape=(self.size, self.size)).tocsr()


def neighbour_graph(
    z: np.ndarray,
    metric: str,
    radius: float,
    neighbours: int = DEFAULT_NEIGHBOURS,
    search: str = "auto",
) -> NeighbourGraph:
    """The edges between embeddings within `radius`, each embedding's `neighbours` nearest.

    Args:
        z: (N, D) float32 embeddings.
        metric: "euclidean", "sqeuclidean" or "cosine" (the model's).
        radius: the decision distance on that metric.
        search: "exact", "faiss" (the `ann` extra; approximate above 20,000 embeddings) or
            "auto" (FAISS from `FAISS_FROM` embeddings when it is installed).
    Raises:
        ConfigError: an unknown search, FAISS asked for and missing, a negative radius.
    """
    import torch

    from siamese.recognition.gallery_search import make_search

    z = np.ascontiguousarray(np.asarray(z, dtype=np.float32))
    if z.ndim != 2:
        raise ConfigError(f"expected (N, D) embeddings, got shape {z.shape}")
    if not np.isfinite(radius) or radius < 0:
        raise ConfigError(f"the clustering threshold must be a distance >= 0, not {radius}")
    if neighbours < 1:
        raise ConfigError(f"neighbours must be >= 1, not {neighbours}")
    n = z.shape[0]
    empty = np.empty(0, dtype=np.int64)
    if n < 2:
        return NeighbourGraph(n, empty, empty, np.empty(0, np.float32), float(radius))
    chosen = search_kind(search, n)
    index = make_search(chosen, metric, "nearest", z.shape[1])
    ids = np.arange(n, dtype=np.int64)
    index.reset(z, ids, ids)
    k = min(neighbours + 1, n)  # the first is (usually) the embedding itself
    top = index.top(torch.from_numpy(z), k)
    found = top.identity_ids.numpy()
    distances = top.distances.numpy()
    rows = np.broadcast_to(ids[:, None], found.shape)
    keep = (found >= 0) & (found != rows) & (distances <= radius)
    a, b, d = rows[keep], found[keep], distances[keep].astype(np.float32)
    first, second = np.minimum(a, b), np.maximum(a, b)
    key = first * n + second
    key, where = np.unique(key, return_index=True)
    return NeighbourGraph(n, first[where], second[where], d[where], float(radius))


def search_kind(search: str, n: int) -> str:
    """The search to use for n embeddings: `search`, or for "auto" FAISS from `FAISS_FROM`
    embeddings when it is installed, else exact."""
    if search not in ("auto", "exact", "faiss"):
        raise ConfigError(f"search {search!r} is unknown: use auto, exact or faiss")
    if search != "auto":
        return search
    if n < FAISS_FROM:
        return "exact"
    try:
        import faiss  # noqa: F401
    except ImportError:
        return "exact"
    return "faiss"
