"""The clustering algorithms, each deciding "same identity" at the model's calibrated
distance: graph clustering of the neighbour graph (connected components, Chinese whispers),
agglomerative clustering cut at the threshold (average or complete linkage) and HDBSCAN.

Each returns (N,) int64 labels: equal labels are one group; a group of one is a singleton.
Nothing here imports torch.
"""

from __future__ import annotations

import numpy as np

from siamese.clustering.neighbour_graph import NeighbourGraph
from siamese.errors import ConfigError

ALGORITHMS = ("chinese-whispers", "connected", "average", "complete", "hdbscan")
"""Every algorithm `cluster_embeddings` takes, by name."""
EXACT_LINKAGE_UP_TO = 12_000
"""The largest connected part of the graph agglomerative clustering takes: it needs every
pairwise distance within the part (scipy's linkage; 12,000 embeddings: 550 MiB). Linkage over
the graph's edges alone is no substitute: every edge is within the threshold, so an average
over edges never exceeds it and a whole chained part would merge (measured on Omniglot)."""
WHISPER_ROUNDS = 50
"""Rounds of Chinese whispers at most; it stops earlier when a round changes no label."""
WHISPER_BLOCKS = 8
"""Each round updates the nodes in this many random blocks, one after the other."""


def require_scipy(what: str) -> None:
    """Raises ConfigError naming the extra to install when scipy/scikit-learn is missing."""
    try:
        import scipy  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"{what} needs scikit-learn (and scipy): pip install 'siamese[cluster]'"
        ) from None


def connected_components(graph: NeighbourGraph) -> np.ndarray:
    """(N,) labels: the connected components of the graph (every chain of edges within the
    threshold is one group: simple, and prone to chaining two people through one bad edge)."""
    require_scipy("clustering")
    from scipy.sparse.csgraph import connected_components as components

    _, labels = components(graph.sparse(), directed=False)
    return labels.astype(np.int64)


def chinese_whispers(graph: NeighbourGraph, seed: int = 0) -> np.ndarray:
    """(N,) labels by Chinese whispers (Biemann 2006; dlib's `chinese_whispers`): every node
    starts alone and repeatedly takes the label most of its neighbours carry, so a single
    edge between two dense groups does not merge them.

    dlib updates one random node at a time in C++; here a round updates the nodes in
    `WHISPER_BLOCKS` random blocks, each block at once with array operations (a Python loop
    over nodes would take minutes at 100,000 embeddings), which keeps the asynchronous
    updates' convergence without their per-node cost. Ties go to a seeded random choice.
    Edges are unweighted, as in dlib's face clustering.
    """
    n = graph.size
    labels = np.arange(n, dtype=np.int64)
    if graph.edges == 0:
        return labels
    sources, targets, _ = graph.directed()
    rng = np.random.default_rng(seed)
    start = np.searchsorted(sources, np.arange(n + 1))  # CSR row pointers
    for _ in range(WHISPER_ROUNDS):
        changed = 0
        order = rng.permutation(n)
        for block in np.array_split(order, WHISPER_BLOCKS):
            block = block[start[block + 1] > start[block]]  # nodes with neighbours
            if block.size == 0:
                continue
            edges = _row_edges(start, block)
            src = sources[edges]
            votes = src * n + labels[targets[edges]]
            keys, counts = np.unique(votes, return_counts=True)
            node, label = keys // n, keys % n
            tie_break = rng.random(keys.size)
            best = np.lexsort((tie_break, -counts, node))  # per node: most votes first
            first = np.ones(best.size, dtype=bool)
            first[1:] = node[best][1:] != node[best][:-1]
            winners, new = node[best][first], label[best][first]
            changed += int(np.count_nonzero(labels[winners] != new))
            labels[winners] = new
        if changed == 0:
            break
    return labels


def _row_edges(start: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """The indices of the directed edges leaving `nodes` (CSR `start` pointers)."""
    lengths = start[nodes + 1] - start[nodes]
    offsets = np.repeat(start[nodes] - np.cumsum(lengths) + lengths, lengths)
    return offsets + np.arange(int(lengths.sum()))


def agglomerative(
    z: np.ndarray, graph: NeighbourGraph, metric: str, threshold: float, linkage: str
) -> np.ndarray:
    """(N,) labels of agglomerative clustering with `linkage` ("average" or "complete") cut at
    `threshold`: groups whose average (or largest) pairwise distance is within it.

    Two groups with no pair within the threshold can never merge under either linkage, so
    the connected parts of the graph are clustered apart, each with every pairwise distance.

    Raises:
        ConfigError: a connected part larger than `EXACT_LINKAGE_UP_TO` (use Chinese
            whispers, which needs only the graph).
    """
    require_scipy("agglomerative clustering")
    from scipy.cluster.hierarchy import fcluster
    from scipy.cluster.hierarchy import linkage as scipy_linkage
    from scipy.sparse.csgraph import connected_components as components

    if linkage not in ("average", "complete"):
        raise ConfigError(f"linkage {linkage!r} is unknown: use average or complete")
    n = graph.size
    labels = np.arange(n, dtype=np.int64)
    if graph.edges == 0:
        return labels
    _, part = components(graph.sparse(), directed=False)
    sizes = np.bincount(part)
    if sizes.max() > EXACT_LINKAGE_UP_TO:
        raise ConfigError(
            f"{linkage} linkage: {int(sizes.max()):,} embeddings are chained within the "
            f"distance {threshold:.4g}, and linkage needs every pairwise distance of such a "
            f"group (at most {EXACT_LINKAGE_UP_TO:,}): use --algorithm chinese-whispers, "
            "which needs only the neighbour graph, or a smaller distance (--far)"
        )
    pairs = sizes[part] == 2  # two embeddings joined by an edge: one group
    labels[pairs] = n + part[pairs]
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(sizes.size + 1))
    next_label = 2 * n  # labels below are the singletons' and the pairs'
    # One call per connected part of three or more: a loop over groups, not over samples.
    for p in np.flatnonzero(sizes > 2):
        members = order[bounds[p] : bounds[p + 1]]
        condensed = _condensed_distances(z[members], metric)
        tree = scipy_linkage(condensed, method=linkage)
        cut = fcluster(tree, t=threshold, criterion="distance").astype(np.int64)
        labels[members] = next_label + cut
        next_label += int(cut.max()) + 1
    return _dense(labels)


def _condensed_distances(x: np.ndarray, metric: str) -> np.ndarray:
    """scipy's condensed (n(n−1)/2,) float64 distances of the rows of x on `metric`."""
    from scipy.spatial.distance import pdist

    x = x.astype(np.float64)
    if metric == "cosine":
        return np.clip(pdist(x, "cosine"), 0.0, None)
    if metric == "sqeuclidean":
        return pdist(x, "sqeuclidean")
    return pdist(x, "euclidean")


def hdbscan(
    z: np.ndarray, graph: NeighbourGraph, metric: str, min_cluster_size: int = 2
) -> np.ndarray:
    """(N,) labels from scikit-learn's HDBSCAN (the density view: groups that stand out from
    their surroundings), each group then split where no chain of edges within the
    calibrated distance joins its members (so it never holds two faces the threshold keeps
    apart). Its noise points are singletons.

    scikit-learn's own `cluster_selection_epsilon` would apply the distance inside HDBSCAN,
    but it fails with NumPy 2 (scikit-learn issue 33219, unfixed in 1.9), hence the split.
    """
    require_scipy("HDBSCAN")
    from sklearn.cluster import HDBSCAN

    n = z.shape[0]
    if n < max(2, min_cluster_size):
        return np.arange(n, dtype=np.int64)
    x = z.astype(np.float64)
    if metric == "cosine":  # cosine distance is monotone in the Euclidean one of unit vectors
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=1, copy=True)
    density = model.fit_predict(x).astype(np.int64)
    if np.all(density < 0):  # no group stands out: one person's photos, or all alike
        density[:] = 0  # then the chains within the distance decide alone
    noise = density < 0
    density[noise] = density.max(initial=-1) + 1 + np.arange(int(noise.sum()))
    chains = connected_components(graph)
    return _dense(density * n + chains)


def _dense(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0 … K−1 (order of first appearance is not kept; only equality)."""
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)
