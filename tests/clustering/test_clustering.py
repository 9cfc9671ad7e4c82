"""`siamese.clustering`: every kernel against a brute-force float64 reference written as plain
loops on random inputs (the neighbour graph, the scores, connected components, agglomerative
clustering against scipy on the full matrix, Chinese whispers' properties, the description of
the groups), and the photo library's embedding cache on real image files."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from siamese.clustering import algorithms
from siamese.clustering.algorithms import (
    ALGORITHMS,
    agglomerative,
    chinese_whispers,
    connected_components,
)
from siamese.clustering.clusters import SINGLETON, cluster_embeddings, describe_groups
from siamese.clustering.neighbour_graph import NeighbourGraph, neighbour_graph
from siamese.clustering.scores import clustering_scores
from siamese.errors import ConfigError

METRICS = ("euclidean", "sqeuclidean", "cosine")


# ------------------------------------------------------------------------------------------
# References by loops


def _distance(a, b, metric: str) -> float:  # type: ignore[no-untyped-def]
    """One distance in float64, by loops over the coordinates."""
    if metric == "cosine":
        dot = norm_a = norm_b = 0.0
        for x, y in zip(a, b, strict=True):
            dot += float(x) * float(y)
            norm_a += float(x) * float(x)
            norm_b += float(y) * float(y)
        return 1.0 - dot / math.sqrt(norm_a * norm_b)
    squared = 0.0
    for x, y in zip(a, b, strict=True):
        squared += (float(x) - float(y)) ** 2
    return squared if metric == "sqeuclidean" else math.sqrt(squared)


def _all_distances(z: np.ndarray, metric: str) -> dict[tuple[int, int], float]:
    """Every pair i < j and its distance."""
    n = len(z)
    return {(i, j): _distance(z[i], z[j], metric) for i in range(n) for j in range(i + 1, n)}


def _radius_in_a_gap(values: list[float], low: float, high: float) -> float:
    """A radius between two of `values` (sorted), in the `low`…`high` quantile range, at the
    middle of the widest gap there: no value lies within float32 rounding of it."""
    ordered = sorted(values)
    lo, hi = int(low * len(ordered)), int(high * len(ordered))
    k = max(range(lo, hi), key=lambda i: ordered[i + 1] - ordered[i])
    gap = ordered[k + 1] - ordered[k]
    assert gap > 1e-4 * max(1.0, ordered[k]), "no usable gap: pick other data"
    return (ordered[k] + ordered[k + 1]) / 2


def _partition(labels) -> set[frozenset[int]]:  # type: ignore[no-untyped-def]
    """The groups of a labelling as sets of indices (label values do not matter)."""
    groups: dict[int, set[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), set()).add(i)
    return {frozenset(g) for g in groups.values()}


def _clusters_of(labels) -> set[frozenset[int]]:  # type: ignore[no-untyped-def]
    """Groups of two or more (singletons, alone or labelled -1, left out)."""
    groups: dict[int, set[int]] = {}
    for i, label in enumerate(labels):
        if label >= 0:
            groups.setdefault(int(label), set()).add(i)
    return {frozenset(g) for g in groups.values() if len(g) >= 2}


def _union_find(n: int, pairs: list[tuple[int, int]]) -> list[int]:
    """Each node's root after joining every pair (a union-find, by loops)."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[ra] = rb
    return [root(i) for i in range(n)]


def _graph(n: int, pairs: list[tuple[int, int]]) -> NeighbourGraph:
    """A graph of the given undirected edges (distances 0)."""
    first = np.array([min(p) for p in pairs], dtype=np.int64)
    second = np.array([max(p) for p in pairs], dtype=np.int64)
    return NeighbourGraph(n, first, second, np.zeros(len(pairs), np.float32), 1.0)


def _blobs(rng: np.random.Generator, sizes: list[int], dim: int = 8, spread: float = 0.05):
    """Well separated clusters: unit centres far apart, members within `spread` of them."""
    centres = rng.normal(size=(len(sizes), dim)) * 10
    z = np.concatenate(
        [c + spread * rng.normal(size=(size, dim)) for c, size in zip(centres, sizes, strict=True)]
    )
    truth = np.repeat(np.arange(len(sizes)), sizes)
    order = rng.permutation(len(z))
    return z[order].astype(np.float32), truth[order]


# ------------------------------------------------------------------------------------------
# The neighbour graph


@pytest.mark.parametrize("search", ["exact", "faiss"])
@pytest.mark.parametrize("metric", METRICS)
def test_the_neighbour_graph_holds_exactly_the_pairs_within_the_radius(
    metric: str, search: str
) -> None:
    if search == "faiss":
        pytest.importorskip("faiss", reason="the ann extra (faiss-cpu) is not installed")
    rng = np.random.default_rng(3)
    z = rng.normal(size=(40, 6)).astype(np.float32)
    z[7] = z[3]  # duplicates: distance 0 from each other, still an edge
    z[21] = z[3]
    pairs = _all_distances(z, metric)
    radius = _radius_in_a_gap(list(pairs.values()), 0.2, 0.4)
    graph = neighbour_graph(z, metric, radius, neighbours=len(z), search=search)
    expected = {p: d for p, d in pairs.items() if d <= radius}
    got = {
        (int(a), int(b)): float(d)
        for a, b, d in zip(graph.first, graph.second, graph.distances, strict=True)
    }
    assert graph.size == 40 and graph.edges == len(got)  # each edge once
    assert set(got) == set(expected)
    assert {(3, 7), (3, 21), (7, 21)} <= set(got)
    for pair, d in expected.items():
        assert got[pair] == pytest.approx(d, rel=1e-4, abs=5e-3), pair
    assert graph.radius == radius


@pytest.mark.parametrize("search", ["exact", "faiss"])
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
def test_zero_distances_are_edges_at_radius_zero_and_kept_by_the_sparse_matrix(
    metric: str, search: str
) -> None:
    if search == "faiss":
        pytest.importorskip("faiss", reason="the ann extra (faiss-cpu) is not installed")
    rng = np.random.default_rng(0)
    # small integers: every distance is exact in float32, duplicates exactly 0
    z = rng.integers(-3, 4, size=(12, 4)).astype(np.float32)
    z[:, 0] = np.arange(12)  # distinct rows …
    z[5] = z[0]  # … but these
    z[9] = z[0]
    z[11] = z[2]
    expected = {p for p, d in _all_distances(z, metric).items() if d == 0.0}
    assert expected == {(0, 5), (0, 9), (5, 9), (2, 11)}
    graph = neighbour_graph(z, metric, 0.0, neighbours=len(z), search=search)
    assert set(zip(graph.first.tolist(), graph.second.tolist(), strict=True)) == expected
    assert np.all(graph.distances == 0.0)
    matrix = graph.sparse()
    assert matrix.nnz == 2 * graph.edges  # the zero-distance edges are stored, both ways
    assert _partition(connected_components(graph)) == _partition(
        _union_find(len(z), sorted(expected))
    )


def test_with_few_neighbours_every_edge_is_within_the_radius_and_each_nearest_is_kept() -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(size=(30, 5)).astype(np.float32)
    pairs = _all_distances(z, "euclidean")
    radius = _radius_in_a_gap(list(pairs.values()), 0.3, 0.5)
    k = 4
    graph = neighbour_graph(z, "euclidean", radius, neighbours=k, search="exact")
    got = set(zip(graph.first.tolist(), graph.second.tolist(), strict=True))
    assert all(pairs[p] <= radius for p in got)
    for i in range(len(z)):
        others = sorted((pairs[(min(i, j), max(i, j))], j) for j in range(len(z)) if j != i)
        for d, j in others[:k]:  # i's k nearest within the radius are edges
            if d <= radius:
                assert (min(i, j), max(i, j)) in got


def test_the_neighbour_graph_refuses_bad_arguments_and_handles_tiny_inputs() -> None:
    z = np.zeros((3, 2), np.float32)
    with pytest.raises(ConfigError, match=r"threshold must be a distance >= 0, not -1"):
        neighbour_graph(z, "euclidean", -1.0)
    with pytest.raises(ConfigError, match=r"threshold must be a distance >= 0, not nan"):
        neighbour_graph(z, "euclidean", float("nan"))
    with pytest.raises(ConfigError, match=r"search 'fast' is unknown: use auto, exact or faiss"):
        neighbour_graph(z, "euclidean", 1.0, search="fast")
    with pytest.raises(ConfigError, match=r"expected \(N, D\) embeddings"):
        neighbour_graph(np.zeros(3, np.float32), "euclidean", 1.0)
    for n in (0, 1):
        graph = neighbour_graph(np.zeros((n, 2), np.float32), "euclidean", 1.0)
        assert graph.size == n and graph.edges == 0


# ------------------------------------------------------------------------------------------
# Scores


def _scores_by_loops(predicted: list[int], truth: list[int]) -> dict[str, float]:
    """Pairwise and BCubed precision / recall / F1 over every pair and every item."""
    n = len(predicted)
    group = [p if p >= 0 else ("alone", i) for i, p in enumerate(predicted)]
    together = predicted_pairs = true_pairs = 0
    for i in range(n):
        for j in range(i + 1, n):
            same_group, same_truth = group[i] == group[j], truth[i] == truth[j]
            predicted_pairs += same_group
            true_pairs += same_truth
            together += same_group and same_truth
    precision = together / predicted_pairs if predicted_pairs else 1.0
    recall = together / true_pairs if true_pairs else 1.0
    b_precision = b_recall = 0.0
    for i in range(n):
        same_group = [j for j in range(n) if group[j] == group[i]]
        same_truth = [j for j in range(n) if truth[j] == truth[i]]
        both = [j for j in same_group if truth[j] == truth[i]]
        b_precision += len(both) / len(same_group) / n
        b_recall += len(both) / len(same_truth) / n

    def f(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r else 0.0

    sizes: dict[object, int] = {}
    for g in group:
        sizes[g] = sizes.get(g, 0) + 1
    return {
        "pairwise_precision": precision,
        "pairwise_recall": recall,
        "pairwise_f1": f(precision, recall),
        "bcubed_precision": b_precision,
        "bcubed_recall": b_recall,
        "bcubed_f": f(b_precision, b_recall),
        "clusters_found": sum(1 for s in sizes.values() if s >= 2),
        "true_identities": len(set(truth)),
        "singletons": sum(1 for p in predicted if p < 0),
    }


def _score_cases() -> list[tuple[str, list[int], list[int]]]:
    rng = np.random.default_rng(11)
    cases = []
    for k in range(6):
        n = int(rng.integers(2, 40))
        predicted = rng.integers(-1, 5, size=n).tolist()  # -1: singletons
        truth = rng.integers(0, int(rng.integers(1, 6)), size=n).tolist()
        cases.append((f"random-{k}", predicted, truth))
    truth = [0, 0, 1, 1, 1, 2, 3, 3]
    cases += [
        ("all singletons", [-1] * 8, truth),
        ("one cluster", [4] * 8, truth),
        ("perfect", [7, 7, 2, 2, 2, -1, 5, 5], truth),
        ("truth all different", [0, 0, 1, -1, 1, 2], [0, 1, 2, 3, 4, 5]),
        ("big labels", [10**9, 10**9, -5, 3], [-2, -2, 8, 8]),
        ("one item", [-1], [0]),
    ]
    return cases


@pytest.mark.parametrize(("case", "predicted", "truth"), _score_cases(), ids=lambda c: str(c))
def test_clustering_scores_equal_the_scores_counted_by_loops(
    case: str, predicted: list[int], truth: list[int]
) -> None:
    got = clustering_scores(np.array(predicted), np.array(truth)).as_dict()
    expected = _scores_by_loops(predicted, truth)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), (case, key)


def test_clustering_scores_of_the_extremes_and_bad_shapes() -> None:
    truth = np.array([0, 0, 1, 1, 1, 2, 3, 3])
    alone = clustering_scores(np.full(8, -1), truth)
    assert alone.pairwise_precision == 1.0 and alone.pairwise_recall == 0.0
    assert alone.singletons == 8 and alone.clusters_found == 0
    one = clustering_scores(np.zeros(8), truth)
    assert one.pairwise_recall == 1.0 and one.bcubed_recall == 1.0 and one.clusters_found == 1
    with pytest.raises(ValueError, match=r"labels of shapes \(3,\) and \(2,\)"):
        clustering_scores(np.zeros(3), np.zeros(2))


# ------------------------------------------------------------------------------------------
# Connected components


@pytest.mark.parametrize("seed", range(4))
def test_connected_components_equal_a_union_find_by_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    pairs = sorted(
        {
            (int(min(a, b)), int(max(a, b)))
            for a, b in rng.integers(0, n, size=(int(rng.integers(0, n)), 2))
            if a != b
        }
    )
    labels = connected_components(_graph(n, pairs)) if pairs else np.arange(n)
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert _partition(labels) == _partition(_union_find(n, pairs))
    # and from embeddings through the neighbour graph
    z = rng.normal(size=(n, 3)).astype(np.float32)
    distances = _all_distances(z, "euclidean")
    radius = _radius_in_a_gap(list(distances.values()), 0.05, 0.2)
    graph = neighbour_graph(z, "euclidean", radius, neighbours=n, search="exact")
    within = [p for p, d in distances.items() if d <= radius]
    assert _partition(connected_components(graph)) == _partition(_union_find(n, within))


# ------------------------------------------------------------------------------------------
# Agglomerative clustering


def _scipy_full(z: np.ndarray, metric: str, threshold: float, linkage: str) -> np.ndarray:
    """scipy's linkage on the full distance matrix (by loops), cut at the threshold."""
    from scipy.cluster.hierarchy import fcluster
    from scipy.cluster.hierarchy import linkage as scipy_linkage
    from scipy.spatial.distance import squareform

    n = len(z)
    full = np.zeros((n, n))
    for (i, j), d in _all_distances(z, metric).items():
        full[i, j] = full[j, i] = d
    tree = scipy_linkage(squareform(full, checks=False), method=linkage)
    return fcluster(tree, t=threshold, criterion="distance")


def _agglomerative_data(seed: int, metric: str, linkage: str) -> tuple[np.ndarray, float]:
    """Loose groups of points and a threshold away from every pairwise distance and every
    merge height of the full linkage (so float32 and float64 agree on every decision)."""
    from scipy.cluster.hierarchy import linkage as scipy_linkage
    from scipy.spatial.distance import squareform

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, 4)) * 3
    z = np.concatenate([c + rng.normal(size=(int(rng.integers(1, 9)), 4)) for c in centres])
    z = z[rng.permutation(len(z))].astype(np.float32)
    distances = _all_distances(z, metric)
    n = len(z)
    full = np.zeros((n, n))
    for (i, j), d in distances.items():
        full[i, j] = full[j, i] = d
    heights = scipy_linkage(squareform(full, checks=False), method=linkage)[:, 2]
    everything = sorted([*distances.values(), *heights.tolist()])
    ordered = sorted(heights.tolist())
    # a threshold among the lower half of the merges: several groups, several singletons
    candidates = [
        (ordered[k] + ordered[k + 1]) / 2
        for k in range(len(ordered) // 4, 3 * len(ordered) // 4)
        if ordered[k + 1] - ordered[k] > 1e-3
    ]
    threshold = max(candidates, key=lambda t: min(abs(t - v) for v in everything) / max(t, 1e-9))
    assert min(abs(threshold - v) for v in everything) > 1e-5 * max(threshold, 1.0)
    return z, threshold


@pytest.mark.parametrize("linkage", ["average", "complete"])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("seed", range(3))
def test_agglomerative_equals_scipy_on_the_full_matrix(
    seed: int, metric: str, linkage: str
) -> None:
    z, threshold = _agglomerative_data(seed, metric, linkage)
    n = len(z)
    graph = neighbour_graph(z, metric, threshold, neighbours=n, search="exact")
    labels = agglomerative(z, graph, metric, threshold, linkage)
    assert labels.shape == (n,)
    expected = _scipy_full(z, metric, threshold, linkage)
    assert _partition(labels) == _partition(expected)
    assert 1 < len(_partition(labels)) < n  # not a trivial cut
    # and the property itself, by loops
    distances = _all_distances(z, metric)
    groups = sorted(_partition(labels), key=min)
    for a in groups:
        if linkage == "complete":
            assert all(distances[(i, j)] <= threshold for i in a for j in a if i < j)
        for b in groups:
            if min(a) < min(b):
                cross = [distances[(min(i, j), max(i, j))] for i in a for j in b]
                between = max(cross) if linkage == "complete" else sum(cross) / len(cross)
                assert between > threshold  # two groups left apart could not merge


@pytest.mark.parametrize("linkage", ["average", "complete"])
def test_agglomerative_refuses_a_chained_part_too_large_for_every_pairwise_distance(
    linkage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connected part above EXACT_LINKAGE_UP_TO embeddings is refused with what to do (the
    linkage is exact or not given), one at the limit is clustered exactly."""
    z, threshold = _agglomerative_data(1, "euclidean", linkage)
    n = len(z)
    expected = cluster_embeddings(z, "euclidean", threshold, linkage, neighbours=n, search="exact")
    graph = neighbour_graph(z, "euclidean", threshold, neighbours=n, search="exact")
    largest = max(len(g) for g in _partition(connected_components(graph)))
    assert largest > 2
    monkeypatch.setattr(algorithms, "EXACT_LINKAGE_UP_TO", largest)
    at_limit = cluster_embeddings(z, "euclidean", threshold, linkage, neighbours=n)
    assert _partition(at_limit.labels) == _partition(expected.labels)
    monkeypatch.setattr(algorithms, "EXACT_LINKAGE_UP_TO", largest - 1)
    with pytest.raises(ConfigError) as refused:
        cluster_embeddings(z, "euclidean", threshold, linkage, neighbours=n)
    message = str(refused.value)
    assert f"{linkage} linkage: {largest} embeddings are chained within the distance" in message
    assert "use --algorithm chinese-whispers" in message and "(--far)" in message


def test_agglomerative_refuses_an_unknown_linkage() -> None:
    z = np.zeros((3, 2), np.float32)
    graph = neighbour_graph(z, "euclidean", 1.0)
    with pytest.raises(ConfigError, match=r"linkage 'single' is unknown: use average or complete"):
        agglomerative(z, graph, "euclidean", 1.0, "single")


# ------------------------------------------------------------------------------------------
# Chinese whispers


def _two_cliques(size: int) -> tuple[NeighbourGraph, set[frozenset[int]]]:
    """Two cliques of `size` nodes joined by one bridge edge (0 — size)."""
    pairs = [
        (offset + i, offset + j)
        for offset in (0, size)
        for i in range(size)
        for j in range(i + 1, size)
    ]
    pairs.append((0, size))
    halves = {frozenset(range(size)), frozenset(range(size, 2 * size))}
    return _graph(2 * size, pairs), halves


def _neighbours(graph: NeighbourGraph) -> list[set[int]]:
    around: list[set[int]] = [set() for _ in range(graph.size)]
    for a, b in zip(graph.first.tolist(), graph.second.tolist(), strict=True):
        around[a].add(b)
        around[b].add(a)
    return around


def _assert_settled(graph: NeighbourGraph, labels: np.ndarray) -> None:
    """Chinese whispers' fixed point, by loops: a node without neighbours keeps its own label;
    any other carries a label the most of its neighbours carry."""
    for node, around in enumerate(_neighbours(graph)):
        if not around:
            assert labels[node] == node
            continue
        votes: dict[int, int] = {}
        for other in around:
            votes[int(labels[other])] = votes.get(int(labels[other]), 0) + 1
        assert votes.get(int(labels[node]), 0) == max(votes.values()), node


@pytest.mark.parametrize("seed", range(20))
def test_chinese_whispers_does_not_merge_two_cliques_over_one_bridge(seed: int) -> None:
    graph, halves = _two_cliques(8)
    labels = chinese_whispers(graph, seed=seed)
    assert _partition(labels) == halves
    assert _partition(connected_components(graph)) == {frozenset(range(16))}  # it chains
    _assert_settled(graph, labels)


def test_chinese_whispers_recovers_separated_blobs_and_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(2)
    z, truth = _blobs(rng, [12, 9, 7, 5, 2, 1, 1])
    distances = _all_distances(z, "euclidean")
    within = max(d for (i, j), d in distances.items() if truth[i] == truth[j])
    across = min(d for (i, j), d in distances.items() if truth[i] != truth[j])
    assert within < 1.0 < across
    graph = neighbour_graph(z, "euclidean", 1.0, neighbours=len(z), search="exact")
    labels = chinese_whispers(graph, seed=7)
    assert _partition(labels) == _partition(truth)
    assert np.array_equal(labels, chinese_whispers(graph, seed=7))  # the same labels again
    _assert_settled(graph, labels)
    assert set(labels.tolist()) <= set(range(len(z)))


@pytest.mark.parametrize("seed", range(5))
def test_chinese_whispers_groups_lie_within_connected_components(seed: int) -> None:
    """On any graph, a label only travels along edges: every group is inside one connected
    component, every label is some node of that component, isolated nodes stay alone."""
    rng = np.random.default_rng(100 + seed)
    n = 50
    pairs = sorted(
        {(int(min(a, b)), int(max(a, b))) for a, b in rng.integers(0, n, (60, 2)) if a != b}
    )
    graph = _graph(n, pairs)
    labels = chinese_whispers(graph, seed=seed)
    roots = _union_find(n, pairs)
    for node in range(n):
        assert roots[int(labels[node])] == roots[node]
    for group in _partition(labels):
        assert len({roots[i] for i in group}) == 1
    around = _neighbours(graph)
    for node in range(n):
        if not around[node]:
            assert labels[node] == node and sum(labels == labels[node]) == 1


def test_every_algorithm_recovers_well_separated_blobs() -> None:
    rng = np.random.default_rng(4)
    z, truth = _blobs(rng, [10, 8, 6, 3, 2])
    for algorithm in ALGORITHMS:
        clustering = cluster_embeddings(z, "euclidean", 1.0, algorithm)
        assert _partition(clustering.labels) == _partition(truth), algorithm
        assert clustering.algorithm == algorithm and clustering.threshold == 1.0


def test_cluster_embeddings_refuses_bad_input_with_what_to_do() -> None:
    z = np.zeros((4, 3), np.float32)
    with pytest.raises(ConfigError, match=r"algorithm 'kmeans' is unknown: use one of chinese"):
        cluster_embeddings(z, "euclidean", 1.0, "kmeans")
    bad = z.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ConfigError, match=r"NaN or infinite values: check the model"):
        cluster_embeddings(bad, "euclidean", 1.0)
    with pytest.raises(ConfigError, match=r"threshold must be a distance >= 0"):
        cluster_embeddings(z, "euclidean", -0.5, "hdbscan")


# ------------------------------------------------------------------------------------------
# The description of the groups


def _mean(rows: list) -> list[float]:  # type: ignore[type-arg]
    dim = len(rows[0])
    return [sum(float(r[d]) for r in rows) / len(rows) for d in range(dim)]


def _unit_row(row) -> list[float]:  # type: ignore[no-untyped-def]
    norm = math.sqrt(sum(float(x) * float(x) for x in row))
    return [float(x) / norm for x in row]


def _description_by_loops(z: np.ndarray, groups: list[int], metric: str, threshold: float):  # type: ignore[no-untyped-def]
    """Clusters (groups of two or more) largest first, ties by first member; centres the
    mean of the members (unit vectors for cosine); each face's distance to its centre, and
    the nearest other cluster whose centre is within the threshold."""
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    clusters = sorted((m for m in members.values() if len(m) >= 2), key=lambda m: (-len(m), m[0]))
    label = [SINGLETON] * len(z)
    for k, m in enumerate(clusters):
        for i in m:
            label[i] = k
    rows = [_unit_row(r) for r in z] if metric == "cosine" else [list(map(float, r)) for r in z]
    centres = [_mean([rows[i] for i in m]) for m in clusters]
    own = [
        0.0 if label[i] < 0 else _distance(z[i], centres[label[i]], metric) for i in range(len(z))
    ]
    alternative = []
    for i in range(len(z)):
        near = [
            (_distance(z[i], centres[k], metric), k) for k in range(len(clusters)) if k != label[i]
        ]
        best = min(near, default=(math.inf, -1))
        alternative.append(best[1] if best[0] <= threshold else -1)
    return label, [len(m) for m in clusters], own, alternative, centres


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("seed", range(3))
def test_describe_groups_equals_the_description_by_loops(seed: int, metric: str) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    z = rng.normal(size=(n, 5)).astype(np.float32)
    groups = rng.integers(0, 9, size=n)
    groups[rng.choice(n, 6, replace=False)] = 100 + np.arange(6)  # groups of one
    groups[:2] = 50  # two groups of equal size: the one seen first ranks first
    groups[n - 2 :] = 60
    # a threshold between two of the face-to-other-centre distances
    _, _, _, _, centres = _description_by_loops(z, groups.tolist(), metric, 0.0)
    to_centres = [_distance(z[i], c, metric) for i in range(n) for c in centres]
    threshold = _radius_in_a_gap(to_centres, 0.05, 0.3)
    label, sizes, own, alternative, _ = _description_by_loops(z, groups.tolist(), metric, threshold)
    got = describe_groups(z, groups, metric, threshold, "given")
    assert got.labels.tolist() == label
    assert got.sizes.tolist() == sizes
    assert sizes == sorted(sizes, reverse=True)
    assert got.sizes.sum() == np.count_nonzero(got.labels >= 0)
    assert got.singletons == sum(1 for g in set(groups.tolist()) if (groups == g).sum() == 1)
    assert got.clusters == len(sizes)
    np.testing.assert_allclose(got.centre_distances, own, rtol=1e-4, atol=1e-5)
    assert got.alternative.tolist() == alternative
    assert 0 < np.count_nonzero(got.uncertain) < n  # the threshold decides for some
    assert got.metric == metric and got.threshold == threshold and got.algorithm == "given"
    for k in range(got.clusters):  # members nearest the centre first
        members = got.members(k)
        assert sorted(members.tolist()) == [i for i in range(n) if label[i] == k]
        assert np.all(np.diff(got.centre_distances[members]) >= 0)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_degenerate_embeddings_never_give_nan(metric: str, algorithm: str) -> None:
    one = np.array([[0.5, -1.0, 2.0]], np.float32)
    cases = {
        "no embeddings": np.zeros((0, 3), np.float32),
        "one": one,
        "identical": np.repeat(one, 6, axis=0),
        "zeros": np.zeros((5, 3), np.float32),
        "two pairs of duplicates": np.array(
            [[1, 0, 0], [1, 0, 0], [0, 3, 0], [0, 3, 0]], np.float32
        ),
    }
    for case, z in cases.items():
        clustering = cluster_embeddings(z, metric, 0.3, algorithm)
        n = len(z)
        assert clustering.labels.shape == (n,) and clustering.alternative.shape == (n,), case
        assert np.all(np.isfinite(clustering.centre_distances)), case
        assert np.all(clustering.centre_distances >= 0), case
        assert clustering.sizes.sum() + clustering.singletons == n, case
        assert np.all(clustering.labels >= SINGLETON) and np.all(clustering.labels < max(1, n))
        if case == "two pairs of duplicates":
            assert _clusters_of(clustering.labels) == {frozenset({0, 1}), frozenset({2, 3})}
        if n <= 1:
            assert clustering.clusters == 0 and clustering.singletons == n
    # describe_groups alone, on groups given: a cluster whose unit vectors cancel (cosine)
    z = np.array([[1, 0], [-1, 0], [0, 1], [0, 1]], np.float32)
    described = describe_groups(z, np.array([0, 0, 1, 1]), metric, 0.5, "given")
    assert np.all(np.isfinite(described.centre_distances))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_identical_embeddings_are_one_cluster_at_its_centre(algorithm: str) -> None:
    """Six faces at distance 0 from each other (the same photo six times, or a library of one
    person): one cluster under every algorithm, not six faces left alone."""
    z = np.repeat(np.array([[0.5, -1.0, 2.0]], np.float32), 6, axis=0)
    clustering = cluster_embeddings(z, "euclidean", 0.3, algorithm)
    assert clustering.labels.tolist() == [0] * 6
    assert clustering.sizes.tolist() == [6] and clustering.singletons == 0
    np.testing.assert_allclose(clustering.centre_distances, 0.0, atol=1e-6)
    assert clustering.alternative.tolist() == [-1] * 6


# ------------------------------------------------------------------------------------------
# The photo library's embedding cache, on real image files (the digits model: no face step)


@pytest.fixture
def digit_photos(tmp_path: Path) -> list[Path]:
    """Six PNG files of digits, one copy of the first under another name, and a .jpg of
    garbage bytes."""
    from siamese.data.sources import load_dataset

    data = load_dataset("digits")
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = []
    for i in range(6):
        path = folder / f"digit-{i}.png"
        Image.fromarray(data.x[i, 0].numpy(), "L").save(path)
        photos.append(path)
    shutil.copy(photos[0], folder / "copy-of-0.png")
    (folder / "broken.jpg").write_bytes(b"\x00not a jpeg at all" * 20)
    return [*photos, folder / "copy-of-0.png", folder / "broken.jpg"]


def test_embed_library_embeds_each_photo_once_and_lists_the_unreadable(
    digit_photos: list[Path], digits_model: Path, tmp_path: Path
) -> None:
    from siamese.clustering.photo_faces import embed_library
    from siamese.recognition import Recognizer

    recognizer = Recognizer.load(digits_model)
    cache = tmp_path / "out" / "embeddings.sqlite"
    first = embed_library(recognizer, digit_photos, cache)
    assert first.photos == 8
    assert first.embedded == 6  # the copy's bytes are the first photo's: embedded once
    assert [f.file for f in first.faces] == [str(p) for p in digit_photos[:7]]
    assert all(f.box is None and f.face == 0 for f in first.faces)
    assert first.faces[0].sha256 == first.faces[6].sha256
    assert np.array_equal(first.z[0], first.z[6])
    assert first.no_face == []
    [(file, reason)] = first.unreadable
    assert file == str(digit_photos[7])
    assert "broken.jpg" in reason and "not an image" in reason and "re-export" in reason
    # the same z as embedding them directly
    expected = np.asarray(recognizer.embed([str(p) for p in digit_photos[:6]]))
    np.testing.assert_allclose(first.z[:6], expected, rtol=1e-5, atol=1e-6)

    again = embed_library(recognizer, digit_photos, cache)
    assert again.embedded == 0 and np.array_equal(again.z, first.z)
    assert again.unreadable == first.unreadable and again.faces == first.faces

    # renamed, and the order changed: nothing embedded, the rows follow the photos given
    moved = digit_photos[0].with_name("renamed.png")
    shutil.copy(digit_photos[0], moved)
    reordered = [moved, digit_photos[3], digit_photos[1]]
    third = embed_library(recognizer, reordered, cache)
    assert third.embedded == 0
    assert np.array_equal(third.z, first.z[[0, 3, 1]])

    # the broken file fixed: read and embedded next time, the rest from the cache
    with Image.open(digit_photos[4]) as image:
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(digit_photos[7], format="PNG")
    fixed = embed_library(recognizer, digit_photos, cache)
    assert fixed.embedded == 1 and fixed.unreadable == [] and len(fixed.faces) == 8
    assert np.array_equal(fixed.z[:7], first.z)


def test_embed_library_lists_a_copy_of_an_unreadable_photo_as_unreadable(
    digit_photos: list[Path], digits_model: Path, tmp_path: Path
) -> None:
    """Two files with the same unreadable bytes are both unreadable (read once), not one
    unreadable and the other a photo without a face."""
    from siamese.clustering.photo_faces import embed_library
    from siamese.recognition import Recognizer

    broken = digit_photos[7]
    twin = broken.with_name("broken-twin.jpg")
    shutil.copy(broken, twin)
    library = embed_library(
        Recognizer.load(digits_model), [digit_photos[1], broken, twin], tmp_path / "c.sqlite"
    )
    assert [f.file for f in library.faces] == [str(digit_photos[1])]
    assert [file for file, _ in library.unreadable] == [str(broken), str(twin)]
    assert library.no_face == []


def test_embed_library_names_a_missing_file_and_refuses_nothing_to_do(
    digit_photos: list[Path], digits_model: Path, tmp_path: Path
) -> None:
    from siamese.clustering.photo_faces import embed_library
    from siamese.errors import DataError
    from siamese.recognition import Recognizer

    recognizer = Recognizer.load(digits_model)
    gone = tmp_path / "photos" / "gone.png"
    library = embed_library(recognizer, [gone, digit_photos[2]], tmp_path / "c.sqlite")
    [(file, reason)] = library.unreadable
    assert file == str(gone) and "gone.png: cannot read it" in reason
    assert len(library.faces) == 1 and library.embedded == 1
    with pytest.raises(DataError, match=r"no photos to cluster: give image files or folders"):
        embed_library(recognizer, [], tmp_path / "c.sqlite")
    with pytest.raises(ConfigError, match=r"--every-face: this model declares no face step"):
        embed_library(recognizer, digit_photos[:2], tmp_path / "c.sqlite", every_face=True)
