"""Retrieval metrics over embeddings: nearest neighbours in a gallery.

Every metric here ranks the gallery for each query by distance. With no reference set
given, the queries are also the gallery and each query's own entry is left out
(leave-one-out). All metrics come from one chunked pass (`retrieval_metrics`): distances are
computed one block of queries at a time (a block × gallery float32 matrix of at most
~128 MB), and only each query's nearest `max(R, k)` gallery items are kept, so an N × N
matrix never exists.

Ranking and ties: the gallery is ordered by distance, then by gallery index (a stable sort),
so equal distances go to the lower index. pytorch-metric-learning's `AccuracyCalculator`
ranks with faiss (or `torch.topk` in `CustomKNN`), whose order among equal distances is
unspecified, and with leave-one-out it drops whichever neighbour is the query's own index;
without ties the two agree exactly (tested).

Definitions (R_q = gallery items of query q's class, less q itself under leave-one-out):

- precision@1: share of answerable queries (R_q ≥ 1) whose nearest item has their class.
- R-precision: mean over answerable queries of (same-class items among the R_q nearest) / R_q.
- MAP@R (Musgrave, Belongie & Lim, "A Metric Learning Reality Check", 2020): mean over
  answerable queries of (1 / R_q) Σ_{i ≤ R_q} P(i)·rel(i), where rel(i) says whether the i-th
  nearest item has the query's class and P(i) is the precision among the i nearest.
- recall@k: share of answerable queries with at least one same-class item among the k
  nearest — the "Recall@K" of metric-learning papers (Oh Song et al. 2016, Sohn 2016), not
  the information-retrieval recall (found / all relevant).
- k-NN accuracy: share of *all* queries whose class wins the majority vote of the k nearest
  items; a vote tie goes to the tied class of the nearest item. A query whose class is
  absent from the gallery is counted, and can only be wrong.

Queries that are not answerable (no other gallery item of their class) are left out of the
first four and counted (`RetrievalReport.left_out`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from siamese.distances import Metric, check_metric, distance_blocks
from siamese.errors import ConfigError, DataError

# Elements of one block × gallery distance matrix (float32: 128 MB). The block's top-R
# indices, labels and float64 precisions come on top: 70k × 70k leave-one-out with R = 7,000
# peaks at ~640 MB above the process's baseline (~1.2 GB at 2**26).
BLOCK_ELEMENTS = 2**25
# Elements of the (rows, k, k) or (rows, classes) vote tensors of k-NN accuracy.
_VOTE_ELEMENTS = 2**24
DEFAULT_RECALL_KS: tuple[int, ...] = (1, 5, 10)
DEFAULT_KNN_K = 5


@dataclass(frozen=True)
class RetrievalReport:
    """All retrieval metrics of one query set against one gallery.

    Attributes:
        precision_at_1, r_precision, map_at_r: means over the answerable queries, in [0, 1].
        recall_at_k: k → recall@k (mean over the answerable queries).
        knn_accuracy: k-NN classification accuracy over all queries, with `knn_k` neighbours.
        queries: answerable queries (their class has another gallery item).
        left_out: queries left out of the means above (no other gallery item of their class).
    """

    precision_at_1: float
    r_precision: float
    map_at_r: float
    recall_at_k: dict[int, float]
    knn_accuracy: float
    knn_k: int
    queries: int
    left_out: int


def answerable_queries(
    labels: torch.Tensor, ref_labels: torch.Tensor | None = None
) -> torch.Tensor:
    """(N,) bool: which queries have at least one gallery item of their class (besides
    themselves when the queries are the gallery)."""
    return relevant_counts(labels, ref_labels) >= 1


def relevant_counts(labels: torch.Tensor, ref_labels: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) int64 R of each query: gallery items of its class, less itself when the queries
    are the gallery (`ref_labels` None).

    Args:
        labels: (N,) query labels; ref_labels: (M,) gallery labels, or None.
    """
    gallery = labels if ref_labels is None else ref_labels
    classes, counts = torch.unique(gallery, return_counts=True)
    position = torch.searchsorted(classes, labels).clamp_max(classes.numel() - 1)
    present = classes[position] == labels
    own = 1 if ref_labels is None else 0
    return torch.where(present, counts[position] - own, 0)


def nearest_neighbours(
    embeddings: torch.Tensor,
    ref_embeddings: torch.Tensor | None = None,
    metric: Metric | str = "euclidean",
    block_rows: int = 1024,
) -> torch.Tensor:
    """(N,) int64 index of each query's nearest gallery item (never itself when the queries
    are the gallery; ties go to the lowest index).

    Args:
        embeddings: (N, D) queries; ref_embeddings: (M, D) gallery or None for the queries.
    """
    out = torch.empty(embeddings.shape[0], dtype=torch.long)
    blocks = distance_blocks(embeddings, ref_embeddings, metric, block_rows, exclude_self=True)
    for start, block in blocks:
        out[start : start + block.shape[0]] = block.argmin(dim=1)
        del block
    return out


@dataclass(frozen=True)
class _RetrievalSets:
    """The queries, the gallery they are ranked against and the metric of one evaluation.

    Attributes:
        embeddings: (N, D) queries; labels: (N,) their labels.
        ref_embeddings: (M, D) gallery and ref_labels: (M,) its labels, or both None for
            leave-one-out (the queries are the gallery, each query's own entry left out).
        metric: "euclidean", "sqeuclidean" or "cosine".
    """

    embeddings: torch.Tensor
    labels: torch.Tensor
    ref_embeddings: torch.Tensor | None
    ref_labels: torch.Tensor | None
    metric: Metric | str

    @property
    def leave_one_out(self) -> bool:
        return self.ref_embeddings is None

    @property
    def gallery_labels(self) -> torch.Tensor:
        """(M,) labels of the gallery (the queries' own under leave-one-out)."""
        return self.labels if self.ref_labels is None else self.ref_labels

    @property
    def available(self) -> int:
        """Gallery items each query can rank (less itself under leave-one-out)."""
        size = self.gallery_labels.shape[0]
        return size - 1 if self.leave_one_out else size

    def checked(self) -> _RetrievalSets:
        """These sets with int64 labels; raise `DataError`/`ConfigError` for unusable inputs."""
        check_metric(self.metric)
        embeddings, ref_embeddings = self.embeddings, self.ref_embeddings
        if (ref_embeddings is None) != (self.ref_labels is None):
            raise ConfigError(
                "retrieval: ref_embeddings and ref_labels go together; give both for a separate "
                "gallery, or neither to use the queries as the gallery (leave-one-out)"
            )
        sets = [("embeddings", embeddings, "labels", self.labels)]
        if ref_embeddings is not None:
            sets.append(("ref_embeddings", ref_embeddings, "ref_labels", self.ref_labels))
        out = []
        for x_name, x, y_name, y in sets:
            if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
                raise DataError(
                    f"retrieval: {x_name} must be a non-empty (N, D) tensor, got shape "
                    f"{tuple(x.shape)}; embed at least one example"
                )
            if y.ndim != 1 or y.shape[0] != x.shape[0]:
                raise DataError(
                    f"retrieval: {y_name} has shape {tuple(y.shape)} but {x_name} has "
                    f"{x.shape[0]} rows; give one label per embedding"
                )
            if y.is_floating_point() or y.is_complex():
                raise DataError(f"retrieval: {y_name} must be integers, got {y.dtype}")
            if not bool(torch.isfinite(x).all()):
                bad = int((~torch.isfinite(x)).any(dim=1).sum())
                raise DataError(
                    f"retrieval: {x_name} has {bad} row(s) with NaN or infinite values; the "
                    "model diverged or the inputs are broken — check the checkpoint and the data"
                )
            out.append(y.long())
        if ref_embeddings is not None and ref_embeddings.shape[1] != embeddings.shape[1]:
            raise DataError(
                f"retrieval: embeddings are {embeddings.shape[1]}-d but ref_embeddings are "
                f"{ref_embeddings.shape[1]}-d; embed both with the same model"
            )
        return replace(self, labels=out[0], ref_labels=out[1] if len(out) > 1 else None)


def _ranked(block: torch.Tensor, depth: int) -> torch.Tensor:
    """(B, depth) int64 gallery indices of each row's `depth` smallest entries of `block`,
    ordered by value then index (what a stable sort of each full row would give)."""
    # One more than needed: where it equals the last kept value, a tie was cut off.
    extra = int(depth < block.shape[1])
    values, index = torch.topk(block, depth + extra, dim=1, largest=False, sorted=True)
    cut = values[:, depth] == values[:, depth - 1] if extra else None
    values, index = values[:, :depth], index[:, :depth].contiguous()
    # topk's order among equal values is unspecified: in rows with ties, re-sort by index,
    # then stably by value.
    tied = (values[:, 1:] == values[:, :-1]).any(dim=1).nonzero().squeeze(1)
    if tied.numel():
        tied_values, tied_index = values[tied], index[tied]
        order = tied_index.argsort(dim=1)
        tied_values, tied_index = tied_values.gather(1, order), tied_index.gather(1, order)
        index[tied] = tied_index.gather(1, tied_values.argsort(dim=1, stable=True))
    # Rows where items equal to the last kept value were cut off: topk may have kept the
    # wrong ones. Rare without exact ties; those rows get a full stable sort.
    del values
    if cut is not None and bool(cut.any()):
        rows = cut.nonzero().squeeze(1)
        # a quarter of a block at a time: argsort's int64 output is twice the float32 input
        step = max(1, BLOCK_ELEMENTS // (4 * block.shape[1]))
        for part in rows.split(step):
            index[part] = block[part].argsort(dim=1, stable=True)[:, :depth]
    return index


def _knn_predictions(neighbour_labels: torch.Tensor) -> torch.Tensor:
    """(B,) the majority label of each row of (B, k) labels, nearest first; a vote tie goes
    to the tied label that comes first in the row."""
    rows, k = neighbour_labels.shape
    out = torch.empty(rows, dtype=neighbour_labels.dtype, device=neighbour_labels.device)
    step = max(1, _VOTE_ELEMENTS // (k * k))
    for start in range(0, rows, step):
        part = neighbour_labels[start : start + step]
        # votes[b, j]: how many of row b's k labels equal its j-th label
        votes = (part[:, :, None] == part[:, None, :]).sum(dim=2)
        first_winner = votes.argmax(dim=1, keepdim=True)  # the first maximal position
        out[start : start + step] = part.gather(1, first_winner).squeeze(1)
    return out


@dataclass
class _PerQuery:
    """Per-query outcomes of one ranking pass, all (N,)."""

    relevant: torch.Tensor  # int64 R
    hit_at_1: torch.Tensor  # bool
    r_precision: torch.Tensor | None  # float64
    average_precision: torch.Tensor | None  # float64
    hit_within: dict[int, torch.Tensor]  # k → bool
    knn_correct: torch.Tensor | None  # bool

    @property
    def answerable(self) -> torch.Tensor:
        """(N,) bool: queries with at least one relevant gallery item (R ≥ 1)."""
        return self.relevant >= 1

    def answerable_mean(self, values: torch.Tensor) -> float:
        """Mean of (N,) per-query `values` over the answerable queries."""
        return _answerable_mean(values, self.answerable)


def _rank_pass(
    sets: _RetrievalSets,
    *,
    at_r: bool,
    recall_ks: Sequence[int],
    knn_k: int | None,
    block_rows: int | None,
) -> _PerQuery:
    """One chunked pass over the queries, keeping each query's nearest max(R, k) items."""
    labels, leave_one_out = sets.labels, sets.leave_one_out
    gallery_labels, available = sets.gallery_labels, sets.available
    if available < 1:
        raise DataError(
            "retrieval: leave-one-out on a single embedding leaves an empty gallery; "
            "give at least two embeddings or a separate gallery"
        )
    for k in (*recall_ks, *([knn_k] if knn_k is not None else [])):
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= available:
            raise ConfigError(
                f"retrieval: k={k!r} but each query has {available} gallery item(s) to rank"
                + (" (leave-one-out leaves out the query itself)" if leave_one_out else "")
                + f"; choose an integer k between 1 and {available}"
            )
    relevant = relevant_counts(labels, sets.ref_labels)
    n = labels.shape[0]
    out = _PerQuery(
        relevant=relevant,
        hit_at_1=torch.zeros(n, dtype=torch.bool),
        r_precision=torch.zeros(n, dtype=torch.float64) if at_r else None,
        average_precision=torch.zeros(n, dtype=torch.float64) if at_r else None,
        hit_within={k: torch.zeros(n, dtype=torch.bool) for k in recall_ks},
        knn_correct=torch.zeros(n, dtype=torch.bool) if knn_k is not None else None,
    )
    fixed_depth = max([1, *recall_ks, *([knn_k] if knn_k is not None else [])])
    rows_per_block = block_rows or max(1, BLOCK_ELEMENTS // gallery_labels.shape[0])
    # The query itself ranks last in leave-one-out (and is never within `available`).
    blocks = distance_blocks(
        sets.embeddings,
        sets.ref_embeddings,
        sets.metric,
        rows_per_block,
        exclude_self=leave_one_out,
    )
    for start, block in blocks:
        rows = block.shape[0]
        stop = start + rows
        r = relevant[start:stop].to(block.device)
        depth = max(fixed_depth, int(r.max())) if at_r else fixed_depth
        index = _ranked(block, depth)
        del block
        neighbour_labels = gallery_labels.to(index.device)[index]
        query_labels = labels[start:stop].to(index.device)
        hit = neighbour_labels == query_labels[:, None]
        out.hit_at_1[start:stop] = hit[:, 0].cpu()
        for k in recall_ks:
            out.hit_within[k][start:stop] = hit[:, :k].any(dim=1).cpu()
        if knn_k is not None:
            predicted = _knn_predictions(neighbour_labels[:, :knn_k])
            out.knn_correct[start:stop] = (predicted == query_labels).cpu()
        if at_r:
            rank = torch.arange(1, depth + 1, device=index.device, dtype=torch.float64)
            relevant_hit = hit & (rank[None, :] <= r[:, None])
            found = relevant_hit.sum(dim=1, dtype=torch.float64)
            precision = relevant_hit.cumsum(dim=1, dtype=torch.float64).div_(rank)
            summed = precision.mul_(relevant_hit).sum(dim=1)
            del precision
            denominator = r.clamp_min(1).double()  # R = 0 rows are left out later
            out.r_precision[start:stop] = (found / denominator).cpu()
            out.average_precision[start:stop] = (summed / denominator).cpu()
    return out


def _answerable_mean(values: torch.Tensor, keep: torch.Tensor) -> float:
    return float(values[keep].double().mean())


def _no_answerable_query(name: str, leave_one_out: bool) -> DataError:
    cause = (
        "every class has a single example, so no query has another of its class"
        if leave_one_out
        else "no query's class appears in the gallery"
    )
    return DataError(
        f"{name}: no query can be answered ({cause}); evaluate on data with 2 or more "
        "examples per class (or a gallery holding the queries' classes)"
    )


def retrieval_metrics(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    ref_embeddings: torch.Tensor | None = None,
    ref_labels: torch.Tensor | None = None,
    metric: Metric | str = "euclidean",
    *,
    recall_ks: Sequence[int] | None = None,
    knn_k: int | None = None,
    block_rows: int | None = None,
) -> RetrievalReport:
    """Every retrieval metric from one chunked pass over the gallery (see the module notes).

    Args:
        embeddings: (N, D) queries; labels: (N,) int64.
        ref_embeddings: (M, D) gallery, ref_labels: (M,), or both None for leave-one-out.
        metric: "euclidean", "sqeuclidean" or "cosine".
        recall_ks: the k of recall@k; default (1, 5, 10), less those above the gallery size.
        knn_k: neighbours voting in k-NN accuracy; default min(5, gallery size).
        block_rows: queries per distance block; default so one block × M float32 matrix is
            at most 128 MB.
    Raises:
        DataError: empty or mismatched inputs, NaN/inf embeddings, or no answerable query.
        ConfigError: a k above the gallery size (less one under leave-one-out), an unknown
            metric, or only one of ref_embeddings / ref_labels.

    Example:
        >>> import torch
        >>> from siamese.evaluation.retrieval import retrieval_metrics
        >>> embeddings = torch.tensor(
        ...     [[0.0, 0.0], [0.1, 0.0], [1.0, 1.0], [1.1, 1.0], [0.0, 1.0], [0.55, 0.5]]
        ... )
        >>> labels = torch.tensor([0, 0, 1, 1, 2, 2])
        >>> report = retrieval_metrics(embeddings, labels)  # leave-one-out over the set itself
        >>> round(report.precision_at_1, 4), round(report.map_at_r, 4), report.queries
        (0.8333, 0.8333, 6)
        >>> {k: round(v, 4) for k, v in report.recall_at_k.items()}
        {1: 0.8333, 5: 1.0}
    """
    sets = _RetrievalSets(embeddings, labels, ref_embeddings, ref_labels, metric).checked()
    available = sets.available
    if recall_ks is None:
        recall_ks = tuple(k for k in DEFAULT_RECALL_KS if k <= available)
    if knn_k is None:
        knn_k = max(1, min(DEFAULT_KNN_K, available))
    per_query = _rank_pass(
        sets, at_r=True, recall_ks=tuple(recall_ks), knn_k=knn_k, block_rows=block_rows
    )
    queries = int(per_query.answerable.sum())
    if queries == 0:
        raise _no_answerable_query("retrieval metrics", sets.leave_one_out)
    return RetrievalReport(
        precision_at_1=per_query.answerable_mean(per_query.hit_at_1),
        r_precision=per_query.answerable_mean(per_query.r_precision),
        map_at_r=per_query.answerable_mean(per_query.average_precision),
        recall_at_k={k: per_query.answerable_mean(v) for k, v in per_query.hit_within.items()},
        knn_accuracy=float(per_query.knn_correct.double().mean()),
        knn_k=knn_k,
        queries=queries,
        left_out=sets.labels.shape[0] - queries,
    )


def _single_metric(
    name: str,
    sets: _RetrievalSets,
    *,
    at_r: bool = False,
    recall_k: int | None = None,
    knn_k: int | None = None,
) -> _PerQuery:
    """The per-query outcomes behind one metric `name` (checked inputs, one ranking pass);
    `DataError` when no query is answerable, except for k-NN accuracy (it counts all)."""
    sets = sets.checked()
    per_query = _rank_pass(
        sets, at_r=at_r, recall_ks=() if recall_k is None else (recall_k,), knn_k=knn_k,
        block_rows=None,
    )  # fmt: skip
    if knn_k is None and not bool(per_query.answerable.any()):
        raise _no_answerable_query(name, sets.leave_one_out)
    return per_query


def precision_at_1(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    ref_embeddings: torch.Tensor | None = None,
    ref_labels: torch.Tensor | None = None,
    metric: Metric | str = "euclidean",
) -> float:
    """Share of answerable queries whose nearest gallery item has their class.

    Args:
        embeddings: (N, D); labels: (N,) int64.
        ref_embeddings: (M, D) gallery, ref_labels: (M,), or both None for leave-one-out.
    Raises:
        DataError: no query is answerable, empty/mismatched/non-finite inputs.
    """
    sets = _RetrievalSets(embeddings, labels, ref_embeddings, ref_labels, metric)
    q = _single_metric("precision@1", sets)
    return q.answerable_mean(q.hit_at_1)


def r_precision(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    ref_embeddings: torch.Tensor | None = None,
    ref_labels: torch.Tensor | None = None,
    metric: Metric | str = "euclidean",
) -> float:
    """Mean over answerable queries of (same-class items among the R nearest) / R, where R
    is the number of the query's class in the gallery (less itself under leave-one-out).

    Args and raises: as `precision_at_1`.
    """
    sets = _RetrievalSets(embeddings, labels, ref_embeddings, ref_labels, metric)
    q = _single_metric("R-precision", sets, at_r=True)
    return q.answerable_mean(q.r_precision)


def map_at_r(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    ref_embeddings: torch.Tensor | None = None,
    ref_labels: torch.Tensor | None = None,
    metric: Metric | str = "euclidean",
) -> float:
    """MAP@R (Musgrave et al. 2020): mean over answerable queries of
    (1/R) Σ_{i ≤ R} P(i)·rel(i), with R as in `r_precision`.

    Args and raises: as `precision_at_1`.
    """
    sets = _RetrievalSets(embeddings, labels, ref_embeddings, ref_labels, metric)
    q = _single_metric("MAP@R", sets, at_r=True)
    return q.answerable_mean(q.average_precision)


def recall_at_k(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    ref_embeddings: torch.Tensor | None = None,
    ref_labels: torch.Tensor | None = None,
    metric: Metric | str = "euclidean",
    *,
    k: int,
) -> float:
    """Share of answerable queries with a same-class item among their k nearest (the
    Recall@K of metric-learning papers).

    Args: as `precision_at_1`; k: 1 ≤ k ≤ gallery size (less one under leave-one-out).
    Raises: as `precision_at_1`, and `ConfigError` for k out of range.
    """
    sets = _RetrievalSets(embeddings, labels, ref_embeddings, ref_labels, metric)
    q = _single_metric("recall@k", sets, recall_k=k)
    return q.answerable_mean(q.hit_within[k])


def knn_accuracy(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    ref_embeddings: torch.Tensor | None = None,
    ref_labels: torch.Tensor | None = None,
    metric: Metric | str = "euclidean",
    *,
    k: int,
) -> float:
    """Share of all queries whose class wins the majority vote of their k nearest gallery
    items (a tie goes to the tied class of the nearest item; a query whose class is not in
    the gallery counts as wrong).

    Args: as `precision_at_1`; k: 1 ≤ k ≤ gallery size (less one under leave-one-out).
    Raises:
        DataError: empty/mismatched/non-finite inputs. ConfigError: k out of range.
    """
    sets = _RetrievalSets(embeddings, labels, ref_embeddings, ref_labels, metric)
    q = _single_metric("k-NN accuracy", sets, knn_k=k)
    return float(q.knn_correct.double().mean())
