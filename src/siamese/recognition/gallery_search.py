"""Search over a gallery's stored embeddings: each probe's k best identities, scored by the
nearest example of each identity (default) or by the identity's centroid.

`ExactSearch` compares every probe with every example (matrix products of a block of probes ×
a block of the gallery with a running top-k: memory stays at one such block, 16 MiB). `FaissSearch` (the `ann` extra, faiss-cpu) serves large
galleries with an inverted-file index that visits `nprobe` of its cells: approximate, so its
recall@1 against exact search is measured in `benchmarks/bench_gallery.py`. Both are caches of
the database, built from its rows and updated by the writes of the process that holds them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from siamese.errors import ConfigError

SCORINGS = ("nearest", "centroid")
SEARCHES = ("exact", "faiss")
MAX_NEIGHBOURS = 2048
"""Examples a FAISS search retrieves per probe at most; identities with more examples than
this / k may then return fewer than k candidates."""
_BLOCK_ELEMENTS = 1 << 22  # probes × stored vectors per distance block (16 MiB of float32)
_PROBE_ROWS = 1024  # probes per block: with the column blocks, a matrix product of a good shape
_MAX_CANDIDATES = 4096  # above it (identities with very many examples), reduce per identity


@dataclass(frozen=True)
class TopIdentities:
    """Each probe's best identities, best first.

    Attributes:
        distances: (Q, k) float32 scores on the model's metric (inf where fewer than k
            identities exist).
        identity_ids: (Q, k) int64 database ids of the identities (−1 where none).
    """

    distances: torch.Tensor
    identity_ids: torch.Tensor


class ExactSearch:
    """Every probe against every stored vector.

    Args:
        metric: "euclidean", "sqeuclidean" or "cosine".
        scoring: "nearest" (an identity scores its closest example) or "centroid" (the
            distance to the mean of its examples).
    """

    def __init__(self, metric: str, scoring: str, dim: int) -> None:
        check_choices(scoring)
        self.metric, self.scoring, self.dim = metric, scoring, dim
        self.vectors = torch.empty(0, dim)
        self.example_ids = torch.empty(0, dtype=torch.long)
        self.owners = torch.empty(0, dtype=torch.long)
        self._refresh()

    def reset(self, vectors: np.ndarray, example_ids: np.ndarray, owners: np.ndarray) -> None:
        """Replace the contents: (M, D) float32 vectors, their (M,) example and identity ids."""
        self.vectors = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
        self.example_ids = torch.from_numpy(np.asarray(example_ids, dtype=np.int64))
        self.owners = torch.from_numpy(np.asarray(owners, dtype=np.int64))
        self._refresh()

    def add(self, vectors: np.ndarray, example_ids: np.ndarray, owners: np.ndarray) -> None:
        self.vectors = torch.cat([self.vectors, torch.from_numpy(vectors.astype(np.float32))])
        self.example_ids = torch.cat([self.example_ids, torch.from_numpy(example_ids)])
        self.owners = torch.cat([self.owners, torch.from_numpy(owners)])
        self._refresh()

    def remove_identities(self, identity_ids: list[int]) -> None:
        keep = ~torch.isin(self.owners, torch.tensor(identity_ids, dtype=torch.long))
        self.vectors, self.example_ids = self.vectors[keep], self.example_ids[keep]
        self.owners = self.owners[keep]
        self._refresh()

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def owner_by_example(self) -> torch.Tensor:
        """(max example id + 1,) int64: each example id's identity id (−1 for no example)."""
        if self._owner_of is None:
            size = int(self.example_ids.max()) + 1 if len(self) else 0
            self._owner_of = torch.full((size,), -1, dtype=torch.long)
            self._owner_of[self.example_ids] = self.owners
        return self._owner_of

    def _refresh(self) -> None:
        # Dense identity positions for the per-identity reduction, and the centroids.
        self._owner_of: torch.Tensor | None = None
        self._cache_key: tuple[str, str] | None = None
        self._cache = torch.empty(0)
        self.identities, self.position = torch.unique(self.owners, return_inverse=True)
        counts = torch.bincount(self.position) if len(self) else torch.zeros(1, dtype=torch.long)
        self.most_examples = int(counts.max())
        if self.scoring == "centroid" and len(self):
            sums = torch.zeros(self.identities.numel(), self.dim)
            sums.index_add_(0, self.position, self.vectors)
            self.centroids = sums / counts.unsqueeze(1)
        else:
            self.centroids = torch.empty(0, self.dim)

    def top(self, queries: torch.Tensor, k: int) -> TopIdentities:
        """The k best identities of each of the (Q, D) probes."""
        q = queries.shape[0]
        n_identities = int(self.identities.numel())
        width = min(k, n_identities)
        distances = torch.full((q, k), math.inf)
        ids = torch.full((q, k), -1, dtype=torch.long)
        if width == 0 or q == 0:
            return TopIdentities(distances, ids)
        centroid = self.scoring == "centroid"
        refs = self.centroids if centroid else self.vectors
        # Rank on squared distances (same order as Euclidean) and take the root of the few
        # kept. With nearest scoring, an identity's examples fill at most `most_examples` of
        # the nearest places, so the k best identities lie among the k × most_examples
        # nearest examples: a top-k over examples, then each identity's first, instead of a
        # reduction over every identity (measured 3–9× faster at 100k–1M; bench_gallery).
        ranked = "sqeuclidean" if self.metric == "euclidean" else self.metric
        candidates = width if centroid else min(len(self), width * self.most_examples)
        reduce_all = not centroid and candidates > _MAX_CANDIDATES
        for start, block in self._probe_blocks(queries):
            if reduce_all:
                best, owner = self._per_identity_best(block, refs, ranked, width)
            else:
                near, where = self._nearest(block, refs, centroid, ranked, candidates)
                if centroid:
                    best, owner = near[:, :width], where[:, :width]
                else:
                    owners = self.position[where]
                    near = torch.where(_first_in_row(owners), near, torch.tensor(math.inf))
                    best, pick = torch.topk(near, width, dim=1, largest=False)
                    owner = torch.gather(owners, 1, pick)
            if ranked != self.metric:
                best = best.clamp_min(0).sqrt()
            stop = start + block.shape[0]
            distances[start:stop, :width] = best
            ids[start:stop, :width] = self.identities[owner]
        return TopIdentities(distances, ids)

    def _probe_blocks(self, queries: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """(start, (B, D) float32 probes) in blocks of at most `_PROBE_ROWS`."""
        q = queries.float()
        for start in range(0, q.shape[0], _PROBE_ROWS):
            yield start, q[start : start + _PROBE_ROWS]

    def _nearest(
        self, block: torch.Tensor, refs: torch.Tensor, centroid: bool, ranked: str, n: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The n nearest stored rows of each probe, nearest first: ((B, n) distances on the
        `ranked` scale, (B, n) row indices), over the stored side in column blocks, keeping
        a running top-n: a block of probes × a block of the gallery is one matrix product
        of a good shape at every size (a few probes against a million rows would otherwise
        be a million-wide product per few probes, and memory bound).

        Within a block only what orders a row is computed — −2 q·r + |r|² for Euclidean
        (the probe's |q|² is the same along a row), q̂·r̂ for cosine — and the distance is
        completed on the n kept: two fewer passes over every B × C block."""
        cosine = ranked == "cosine"
        prepared = self._prepared_refs(refs, centroid)
        q = torch.nn.functional.normalize(block, dim=1, eps=1e-12) if cosine else block
        cols = max(1, _BLOCK_ELEMENTS // max(1, block.shape[0]))
        best: torch.Tensor | None = None
        where: torch.Tensor | None = None
        for col in range(0, refs.shape[0], cols):
            if cosine:
                order = q @ prepared[col : col + cols].T
            else:
                order = torch.addmm(
                    prepared[col : col + cols].unsqueeze(0),
                    q,
                    refs[col : col + cols].T,
                    beta=1.0,
                    alpha=-2.0,
                )
            v, i = torch.topk(order, min(n, order.shape[1]), dim=1, largest=cosine)
            del order
            i = i + col
            if best is not None:
                assert where is not None
                v, i = torch.cat([best, v], dim=1), torch.cat([where, i], dim=1)
                v, pick = torch.topk(v, min(n, v.shape[1]), dim=1, largest=cosine)
                i = torch.gather(i, 1, pick)
            best, where = v, i
        assert best is not None and where is not None
        if cosine:
            return (1.0 - best).clamp_min(0.0), where
        return (best + block.square().sum(dim=1, keepdim=True)).clamp_min(0.0), where

    def _per_identity_best(
        self, block: torch.Tensor, refs: torch.Tensor, ranked: str, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each probe's `width` best identities by their nearest example, reduced over every
        identity (for identities with very many examples): ((B, width), (B, width))."""
        per_identity = torch.full((block.shape[0], int(self.identities.numel())), math.inf)
        for col, d in self._distance_blocks(block, refs, False, ranked):
            index = self.position[col : col + d.shape[1]].expand(block.shape[0], -1)
            per_identity.scatter_reduce_(1, index, d, reduce="amin")
        return torch.topk(per_identity, width, dim=1, largest=False)

    def _distance_blocks(
        self, block: torch.Tensor, refs: torch.Tensor, centroid: bool, ranked: str
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """(first column, (B, C) distances on the `ranked` scale) over column blocks of the
        stored rows, B × C at most `_BLOCK_ELEMENTS`. The stored side's squared norms (or
        unit vectors, for cosine) are computed once per gallery state, not per call
        (`siamese.distances` recomputes them, as it must for sets that change every call)."""
        prepared = self._prepared_refs(refs, centroid)
        cols = max(1, _BLOCK_ELEMENTS // max(1, block.shape[0]))
        if ranked == "cosine":
            unit = torch.nn.functional.normalize(block, dim=1, eps=1e-12)
        else:
            norms = block.square().sum(dim=1, keepdim=True)
        for col in range(0, refs.shape[0], cols):
            if ranked == "cosine":
                yield col, (1.0 - unit @ prepared[col : col + cols].T).clamp_min(0.0)
            else:
                squared = torch.addmm(
                    prepared[col : col + cols].unsqueeze(0),
                    block,
                    refs[col : col + cols].T,
                    beta=1.0,
                    alpha=-2.0,
                )
                yield col, (squared + norms).clamp_min(0.0)

    def _prepared_refs(self, refs: torch.Tensor, centroid: bool) -> torch.Tensor:
        key = ("centroid" if centroid else "examples", self.metric)
        if self._cache_key != key:
            self._cache = (
                torch.nn.functional.normalize(refs, dim=1, eps=1e-12)
                if self.metric == "cosine"
                else refs.square().sum(dim=1)
            )
            self._cache_key = key
        return self._cache


class FaissSearch:
    """An inverted-file FAISS index over the stored vectors (flat below `ivf_from` vectors,
    where an exhaustive scan is as fast). With "nearest" scoring it retrieves the
    `neighbours(k)` nearest examples and keeps each identity's best; with "centroid" it
    indexes one vector per identity.

    Args:
        nprobe: inverted-file cells visited per probe (recall against time).
        ivf_from: the gallery size from which an inverted file is used.
    """

    def __init__(
        self, metric: str, scoring: str, dim: int, nprobe: int = 16, ivf_from: int = 20_000
    ) -> None:
        check_choices(scoring)
        try:
            import faiss
        except ImportError:
            raise ConfigError(
                "search 'faiss' needs faiss-cpu: pip install 'siamese[ann]' (or faiss-cpu), or "
                "use the exact search"
            ) from None
        self.faiss = faiss
        self.metric, self.scoring, self.dim = metric, scoring, dim
        self.nprobe, self.ivf_from = nprobe, ivf_from
        self.exact = ExactSearch(metric, scoring, dim)  # the rows, kept for rebuilds
        self.index = None
        self.trained_size = 0

    def _prepared(self, vectors: torch.Tensor | np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if self.metric == "cosine":
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x

    def _build(self) -> None:
        faiss = self.faiss
        if self.scoring == "centroid":
            vectors, ids = self.exact.centroids, self.exact.identities
        else:
            vectors, ids = self.exact.vectors, self.exact.example_ids
        x = self._prepared(vectors)
        m = x.shape[0]
        inner = self.metric == "cosine"
        flat = faiss.IndexFlatIP(self.dim) if inner else faiss.IndexFlatL2(self.dim)
        if m >= self.ivf_from:
            nlist = max(1, min(int(4 * math.sqrt(m)), m // 39))
            kind = faiss.METRIC_INNER_PRODUCT if inner else faiss.METRIC_L2
            index = faiss.IndexIVFFlat(flat, self.dim, nlist, kind)
            index.train(x)
            index.nprobe = self.nprobe
            self._quantizer = flat  # the IVF index borrows it
        else:
            index = faiss.IndexIDMap2(flat)
        if m:
            index.add_with_ids(x, np.asarray(ids, dtype=np.int64))
        self.index, self.trained_size = index, m

    def reset(self, vectors: np.ndarray, example_ids: np.ndarray, owners: np.ndarray) -> None:
        self.exact.reset(vectors, example_ids, owners)
        self._build()

    def add(self, vectors: np.ndarray, example_ids: np.ndarray, owners: np.ndarray) -> None:
        self.exact.add(vectors, example_ids, owners)
        grown = len(self.exact) > 2 * max(self.trained_size, self.ivf_from // 2)
        if self.scoring == "centroid" or grown:
            self._build()  # centroids moved, or the cells were trained on a far smaller set
        else:
            self.index.add_with_ids(self._prepared(vectors), np.asarray(example_ids, np.int64))

    def remove_identities(self, identity_ids: list[int]) -> None:
        gone = self.exact.example_ids[
            torch.isin(self.exact.owners, torch.tensor(identity_ids, dtype=torch.long))
        ]
        self.exact.remove_identities(identity_ids)
        if self.scoring == "centroid":
            self._build()
        elif gone.numel():
            self.index.remove_ids(np.asarray(gone.numpy(), dtype=np.int64))

    def __len__(self) -> int:
        return len(self.exact)

    def neighbours(self, k: int) -> int:
        """Examples retrieved per probe for k identities under "nearest" scoring: enough
        for k identities even if the nearest ones fill the list with their every example
        (k × the most examples an identity has), at most `MAX_NEIGHBOURS`."""
        return min(len(self.exact), max(k * self.exact.most_examples, 32), MAX_NEIGHBOURS)

    def top(self, queries: torch.Tensor, k: int) -> TopIdentities:
        q = queries.shape[0]
        distances = torch.full((q, k), math.inf)
        ids = torch.full((q, k), -1, dtype=torch.long)
        if len(self.exact) == 0:
            return TopIdentities(distances, ids)
        x = self._prepared(queries.detach().cpu().numpy())
        n = k if self.scoring == "centroid" else self.neighbours(k)
        n = min(n, int(self.index.ntotal))
        raw, found = self.index.search(x, n)
        d = torch.from_numpy(self._to_metric(raw))
        found_t = torch.from_numpy(found)
        if self.scoring == "centroid":
            owners = found_t
        else:
            owner_of = self.exact.owner_by_example()
            valid = (found_t >= 0) & (found_t < owner_of.numel())
            owners = torch.where(valid, owner_of[found_t.clamp(0, owner_of.numel() - 1)], -1)
        # Keep each identity's first (closest) candidate in a row, then the k best of those.
        d = torch.where((owners >= 0) & _first_in_row(owners), d, torch.tensor(math.inf))
        width = min(k, n)
        best, where = torch.topk(d, width, dim=1, largest=False)
        chosen = torch.gather(owners, 1, where)
        distances[:, :width] = best
        ids[:, :width] = torch.where(torch.isfinite(best), chosen, -1)
        return TopIdentities(distances, ids)

    def _to_metric(self, raw: np.ndarray) -> np.ndarray:
        raw = np.where(np.isfinite(raw), raw, np.inf).astype(np.float32)
        if self.metric == "cosine":
            return np.clip(1.0 - raw, 0.0, None)
        if self.metric == "euclidean":
            return np.sqrt(np.clip(raw, 0.0, None))
        return np.clip(raw, 0.0, None)


def _first_in_row(values: torch.Tensor) -> torch.Tensor:
    """(Q, n) bool: True where a row's value appears for the first time (left to right)."""
    sorted_values, order = torch.sort(values, dim=1, stable=True)
    first_sorted = torch.ones_like(sorted_values, dtype=torch.bool)
    first_sorted[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    return torch.zeros_like(first_sorted).scatter(1, order, first_sorted)


def check_choices(scoring: str, search: str = "exact") -> None:
    """Raises ConfigError for a scoring or search that is not one of `SCORINGS`/`SEARCHES`."""
    if scoring not in SCORINGS:
        raise ConfigError(f"scoring {scoring!r} is unknown: use {' or '.join(SCORINGS)}")
    if search not in SEARCHES:
        raise ConfigError(f"search {search!r} is unknown: use {' or '.join(SEARCHES)}")


def make_search(
    search: str, metric: str, scoring: str, dim: int, nprobe: int = 16
) -> ExactSearch | FaissSearch:
    """The search of kind `search` ("exact" or "faiss")."""
    check_choices(scoring, search)
    if search == "faiss":
        return FaissSearch(metric, scoring, dim, nprobe=nprobe)
    return ExactSearch(metric, scoring, dim)
