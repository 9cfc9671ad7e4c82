"""Search over a gallery's stored embeddings: each probe's k best identities, scored by the
nearest example of each identity (default) or by the identity's centroid.

`ExactSearch` (`gallery_exact_search`) compares every probe with every example.
`IndexSearch` (the `ann` extra, faiss-cpu) serves large galleries with an approximate index
(`gallery_index`: "ivf", "hnsw", "ivfpq"), its parameters tuned to agree with the exact search
on at least 99.9 % of probes; `search_for_size` picks the kind for search "auto"
(`benchmarks/bench_gallery_search.py` measured them on galleries that look like real ones).
Both are caches of the database, built from its rows (or from the persisted snapshot,
`gallery_index_files`) and updated by the writes of the process that holds them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from siamese.errors import ConfigError
from siamese.recognition.gallery_exact_search import MAX_NEIGHBOURS as MAX_NEIGHBOURS
from siamese.recognition.gallery_exact_search import SCORINGS as SCORINGS
from siamese.recognition.gallery_exact_search import ExactSearch as ExactSearch
from siamese.recognition.gallery_exact_search import TopIdentities as TopIdentities
from siamese.recognition.gallery_exact_search import _first_in_row, _most_examples, check_scoring
from siamese.recognition.score_normalisation import COHORT

SEARCHES = ("auto", "exact", "ivf", "hnsw", "ivfpq")
ALIASES = {"faiss": "ivf"}  # the name "ivf" had before the other index kinds came
AUTO_KINDS = ((0, "exact"), (200_000, "ivfpq"))
"""(smallest gallery, kind) steps of search "auto", from `benchmarks/bench_gallery_search.py`."""
FLAT_BELOW = 1000
"""An index over fewer examples is exhaustive (FAISS's flat index): as fast, and exact."""


class IndexSearch:
    """An approximate index (`gallery_index`: "ivf", "hnsw" or "ivfpq") over a snapshot of
    the gallery's examples, with the examples enrolled since searched exactly beside it and
    the examples removed since masked out: the snapshot is never modified in place (it may
    be a memory-mapped file that every worker on the host shares), and is written anew
    (`gallery_index_files`) only when the changes have grown (`changes`).

    "nearest" scoring only: it retrieves the `neighbours(k)` nearest examples and keeps each
    identity's best. Below `FLAT_BELOW` examples the snapshot's index is an exhaustive one.

    Args:
        kind: "ivf", "hnsw" or "ivfpq".
        target: the share of probes whose answers must agree with exact search; the
            index's search parameters are tuned to it when it is built.
        radius: the gallery's decision threshold on the metric (an answer is the nearest
            identity within it, else "unknown"); None: the nearest identity must agree.
    """

    def __init__(
        self,
        kind: str,
        metric: str,
        scoring: str,
        dim: int,
        target: float | None = None,
        radius: float | None = None,
    ) -> None:
        from siamese.recognition import gallery_index

        check_choices(scoring, kind)
        if scoring != "nearest":
            raise ConfigError(
                f"search {kind!r} indexes examples, for scoring 'nearest'; a gallery scored by "
                "centroid searches one vector per identity: use --search exact"
            )
        gallery_index.faiss_module()  # a clear error now when FAISS is missing
        self.kind, self.metric, self.scoring, self.dim = kind, metric, scoring, dim
        self.target = gallery_index.TARGET_AGREEMENT if target is None else float(target)
        self.radius = radius
        self.rows = np.empty((0, dim), np.float32)  # the snapshot's prepared rows
        self.row_ids = np.empty(0, np.int64)  # their example ids, ascending
        self.row_owners = np.empty(0, np.int64)  # their identities now (−1: removed)
        self.index: gallery_index.AnnIndex | None = None
        self.tuning: gallery_index.Tuning | None = None
        self.added = ExactSearch(metric, "nearest", dim)  # enrolled since the snapshot
        self._counts()

    # ------------------------------------------------------------------------------------
    # Contents

    def reset(self, vectors: np.ndarray, example_ids: np.ndarray, owners: np.ndarray) -> None:
        """Build the index (and tune it) over (M, D) vectors with their (M,) example and
        identity ids."""
        from siamese.recognition import gallery_index

        rows, ids, owners = gallery_index.rows_by_id(vectors, example_ids, owners, self.metric)
        index, tuning = self.built(rows, owners)
        self.adopt(rows, ids, index, tuning, owners)

    def built(self, rows: np.ndarray, owners: np.ndarray, index: Any = None) -> tuple[Any, Any]:
        """An index over (M, D) prepared rows (built unless given: exhaustive below
        `FLAT_BELOW` rows) and its tuning to this search's target at its radius (None for
        an exhaustive one); owners: (M,) identity of each row (−1: removed)."""
        from siamese.recognition import gallery_index

        if index is None:
            kind = self.kind if rows.shape[0] >= FLAT_BELOW else "flat"
            index = gallery_index.AnnIndex.build_over(kind, rows)
        if index.kind == "flat":
            return index, None
        tuning = gallery_index.tune(
            index,
            rows,
            owners,
            self.neighbours_for(owners, 1 + COHORT),
            self.target,
            gallery_index.squared_radius(self.radius, self.metric),
        )
        return index, tuning

    def adopt(
        self,
        rows: np.ndarray,
        row_ids: np.ndarray,
        index: Any,
        tuning: Any,
        row_owners: np.ndarray,
        added: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Take a snapshot as it is (read from its file, or just built): (M, D) prepared
        rows, their (M,) ascending example ids, the index over them, its tuning, each row's
        identity now (−1 for a row since removed), and the examples added since as
        ((A, D) vectors, (A,) example ids, (A,) identity ids)."""
        self.rows, self.row_ids, self.index, self.tuning = rows, row_ids, index, tuning
        self.row_owners = np.asarray(row_owners, dtype=np.int64).copy()
        if added is None:
            added = (
                np.empty((0, self.dim), np.float32),
                np.empty(0, np.int64),
                np.empty(0, np.int64),
            )
        self.added.reset(*added)
        self._counts()

    def add(self, vectors: np.ndarray, example_ids: np.ndarray, owners: np.ndarray) -> None:
        self.added.add(vectors, np.asarray(example_ids, np.int64), np.asarray(owners, np.int64))
        self._counts()

    def remove_identities(self, identity_ids: list[int]) -> None:
        gone = np.isin(self.row_owners, np.asarray(identity_ids, dtype=np.int64))
        self.row_owners[gone] = -1
        self.added.remove_identities(identity_ids)
        self._counts()

    def __len__(self) -> int:
        return self.alive + len(self.added)

    def changes(self) -> int:
        """Examples added or removed since the snapshot was made."""
        return len(self.added) + int(self.row_owners.size) - self.alive

    def _counts(self) -> None:
        live = self.row_owners >= 0
        self.alive = int(np.count_nonzero(live))
        owners = np.concatenate([self.row_owners[live], self.added.owners.numpy()])
        self.most_examples = _most_examples(owners)

    @staticmethod
    def neighbours_for(owners: np.ndarray, k: int) -> int:
        """`neighbours(k)` for a gallery whose rows have these identities."""
        live = owners[owners >= 0]
        return min(live.size, max(k * _most_examples(live), 32), MAX_NEIGHBOURS)

    def neighbours(self, k: int) -> int:
        """Examples retrieved per probe for k identities: enough for k identities even if
        the nearest ones fill the list with their every example (k × the most examples an
        identity has), at least 32, at most `MAX_NEIGHBOURS`."""
        return min(max(1, len(self)), max(k * self.most_examples, 32), MAX_NEIGHBOURS)

    # ------------------------------------------------------------------------------------
    # Searching

    def top(self, queries: torch.Tensor, k: int) -> TopIdentities:
        """The k best identities of each of the (Q, D) probes."""
        from siamese.recognition import gallery_index

        q = queries.shape[0]
        distances = torch.full((q, k), math.inf)
        ids = torch.full((q, k), -1, dtype=torch.long)
        if len(self) == 0 or q == 0:
            return TopIdentities(distances, ids)
        parts_d, parts_owner = [], []
        if self.alive and self.index is not None:
            x = gallery_index.prepared(queries.detach().cpu().numpy(), self.metric)
            removed = int(self.row_owners.size) - self.alive
            n = self.neighbours(k) + min(removed, self.neighbours(k))
            squared, where = self.index.candidates(x, n, self.rows)
            owner = np.where(where >= 0, self.row_owners[np.clip(where, 0, None)], -1)
            parts_d.append(torch.from_numpy(gallery_index.to_metric(squared, self.metric)))
            parts_owner.append(torch.from_numpy(owner))
        if len(self.added):
            near = self.added.top(queries, k)
            parts_d.append(near.distances)
            parts_owner.append(near.identity_ids)
        d, owners = torch.cat(parts_d, dim=1), torch.cat(parts_owner, dim=1)
        # Keep each identity's first (closest) candidate in a row, then the k best of those.
        order = torch.argsort(d, dim=1, stable=True)
        d, owners = torch.gather(d, 1, order), torch.gather(owners, 1, order)
        d = torch.where((owners >= 0) & _first_in_row(owners), d, torch.tensor(math.inf))
        width = min(k, d.shape[1])
        best, pick = torch.topk(d, width, dim=1, largest=False)
        chosen = torch.gather(owners, 1, pick)
        distances[:, :width] = best
        ids[:, :width] = torch.where(torch.isfinite(best), chosen, -1)
        return TopIdentities(distances, ids)


"""From this many kept per row, a block's best are found by NumPy's introselect
(`argpartition`, linear) instead of `torch.topk` (a heap: 3× slower at 100 of 4,096 here,
and slower than the block's matrix product itself)."""


def check_choices(scoring: str, search: str = "exact") -> None:
    """Raises ConfigError for a scoring or search that is not one of `SCORINGS`/`SEARCHES`."""
    check_scoring(scoring)
    if search not in SEARCHES and search not in ALIASES:
        raise ConfigError(f"search {search!r} is unknown: use {', '.join(SEARCHES)}")


def search_for_size(search: str, examples: int, scoring: str = "nearest") -> str:
    """The search kind to use: `search` itself (its old name "faiss" read as "ivf"), or for
    "auto" the kind measured best for a gallery of `examples` (`AUTO_KINDS`; exact while
    FAISS is not installed, and for centroid scoring)."""
    check_choices(scoring, search)
    search = ALIASES.get(search, search)
    if search != "auto":
        return search
    if scoring != "nearest":
        return "exact"
    chosen = "exact"
    for smallest, kind in AUTO_KINDS:
        if examples >= smallest:
            chosen = kind
    if chosen != "exact":
        try:
            import faiss  # noqa: F401
        except ImportError:
            return "exact"
    return chosen


def make_search(
    search: str, metric: str, scoring: str, dim: int, target: float | None = None
) -> ExactSearch | IndexSearch:
    """The search of kind `search` ("exact", "ivf", "hnsw" or "ivfpq"; "auto" must be
    resolved with `search_for_size` first)."""
    check_choices(scoring, search)
    search = ALIASES.get(search, search)
    if search == "auto":
        raise ConfigError("resolve search 'auto' with search_for_size before making it")
    if search == "exact":
        return ExactSearch(metric, scoring, dim)
    return IndexSearch(search, metric, scoring, dim, target)
