"""Exact search over a gallery's stored embeddings: every probe compared with every example,
in matrix products of a block of probes × a block of the gallery with a running top-k, so
memory stays at one such block (16 MiB). `ExactSearch` keeps each probe's k best identities
(by nearest example, or by centroid) and, for index tuning, the nearest examples themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from siamese.errors import ConfigError

SCORINGS = ("nearest", "centroid")
MAX_NEIGHBOURS = 2048
"""Examples a FAISS search retrieves per probe at most; identities with more examples than
this / k may then return fewer than k candidates."""
_BLOCK_ELEMENTS = 1 << 22  # probes × stored vectors per distance block (16 MiB of float32)
_PROBE_ROWS = 1024  # probes per block: with the column blocks, a matrix product of a good shape
_MAX_CANDIDATES = 4096  # above it (identities with very many examples), reduce per identity


def check_scoring(scoring: str) -> None:
    """Raises ConfigError for a scoring that is not one of `SCORINGS`."""
    if scoring not in SCORINGS:
        raise ConfigError(f"scoring {scoring!r} is unknown: use {' or '.join(SCORINGS)}")


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
        check_scoring(scoring)
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

    def nearest_examples(self, queries: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each of the (Q, D) probes' n nearest stored rows, nearest first: ((Q, n) distances
        — squared for "euclidean", as ranked — and (Q, n) int64 row positions)."""
        ranked = "sqeuclidean" if self.metric == "euclidean" else self.metric
        n = min(n, len(self))
        parts = [
            self._nearest(b, self.vectors, False, ranked, n) for _, b in self._probe_blocks(queries)
        ]
        if not parts:
            return torch.empty(0, n), torch.empty(0, n, dtype=torch.long)
        return torch.cat([d for d, _ in parts]), torch.cat([w for _, w in parts])

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
            if best is not None and best.shape[1] == n:
                # Only what beats a row's n-th best so far can enter: after the first
                # blocks that is a few values a row, gathered instead of selected from
                # the whole block (selection was 3× the matrix product's time).
                v, i = _beating(order, best, cosine)
                del order
                if v is None:
                    continue
                i = i + col
            else:
                v, i = _best_unordered(order, n, cosine)
                del order
                i = i + col
            if best is not None:
                assert where is not None
                v, i = torch.cat([best, v], dim=1), torch.cat([where, i], dim=1)
                v, pick = _best_unordered(v, n, cosine)
                i = torch.gather(i, 1, pick)
            best, where = v, i
        assert best is not None and where is not None
        best, pick = torch.sort(best, dim=1, descending=cosine, stable=True)
        where = torch.gather(where, 1, pick)
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


_PARTITION_FROM = 24


def _best_unordered(
    values: torch.Tensor, n: int, largest: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The n smallest (largest) of each row of (B, C) values, in no order: ((B, n) values,
    (B, n) int64 column indices); every column when n >= C."""
    width = values.shape[1]
    if n >= width:
        return values, torch.arange(width).expand(values.shape[0], width)
    if n < _PARTITION_FROM:
        return torch.topk(values, n, dim=1, largest=largest, sorted=False)
    keyed = values.numpy()
    where = np.argpartition(-keyed if largest else keyed, n - 1, axis=1)[:, :n]
    return torch.from_numpy(np.take_along_axis(keyed, where, axis=1)), torch.from_numpy(where)


def _beating(
    block: torch.Tensor, best: torch.Tensor, largest: bool
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The values of a (B, C) block that beat their row's worst of `best` (B, n), packed
    to the left of a (B, m) tensor (m: the most any row has; the rest ±inf), with their
    (B, m) column indices; (None, _) when no value beats."""
    if largest:
        bound = best.min(dim=1, keepdim=True).values
        hit = block > bound
    else:
        bound = best.max(dim=1, keepdim=True).values
        hit = block < bound
    rows, cols = hit.nonzero(as_tuple=True)  # row-major: each row's hits together
    if rows.numel() == 0:
        return None, rows
    counts = torch.bincount(rows, minlength=block.shape[0])
    most = int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(rows.numel()) - starts[rows]
    fill = -math.inf if largest else math.inf
    values = torch.full((block.shape[0], most), fill, dtype=block.dtype)
    columns = torch.zeros((block.shape[0], most), dtype=torch.long)
    values[rows, slot] = block[rows, cols]
    columns[rows, slot] = cols
    return values, columns


def _most_examples(owners: np.ndarray) -> int:
    """The most examples any identity has among (M,) identity ids >= 0 (1 when none): a
    count per id (milliseconds at 1M, where sorting them took 0.1 s per enrollment)."""
    return int(np.bincount(owners).max()) if owners.size else 1


def _first_in_row(values: torch.Tensor) -> torch.Tensor:
    """(Q, n) bool: True where a row's value appears for the first time (left to right)."""
    sorted_values, order = torch.sort(values, dim=1, stable=True)
    first_sorted = torch.ones_like(sorted_values, dtype=torch.bool)
    first_sorted[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    return torch.zeros_like(first_sorted).scatter(1, order, first_sorted)
