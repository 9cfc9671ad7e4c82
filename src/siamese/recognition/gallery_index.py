"""Approximate nearest-example indexes over a gallery's stored embeddings (FAISS, the `ann`
extra), each tuned at build time to a stated target of agreement with the exact search.

Kinds (`--search`):

- "ivf": an inverted file of flat vectors (k-means cells, `nprobe` of them visited);
- "hnsw": a navigable small-world graph over flat vectors (`ef_search` candidates explored);
- "ivfpq": an inverted file of product-quantised codes (16 bytes a 128-d vector) whose
  shortlist of `shortlist` candidates is re-ranked with the exact vectors: what keeps 10M
  examples within this machine's memory.

Every kind returns row positions into the snapshot's rows (`AnnIndex.candidates`) with
exact distances: "ivf" and "hnsw" store the vectors themselves; "ivfpq" re-ranks.

Tuning (`tune`): a sample of stored examples, each searched as a probe with itself left out
(a mated probe whose identity has its other examples enrolled; an identity with one example
makes a stranger-like probe), through the same retrieval width the gallery uses; the search
parameter is raised along a ladder (about ×1.5 a step) until the answers agree with the
exact search's on at least `TARGET_AGREEMENT` of them. An answer is the nearest identity
within the gallery's decision threshold, else "unknown" (where the gallery decides on
normalised scores, the nearest identity itself, a stricter test). A stranger the exact
search rejects is always rejected by an index: its distances are never shorter than the
exact ones. The chosen parameters, the threshold and the measured agreement are recorded
with the index; the threshold moves as the gallery grows, and the index is tuned again
whenever its snapshot is rewritten.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from siamese.errors import ConfigError
from siamese.recognition.gallery_exact_search import ExactSearch

ANN_KINDS = ("ivf", "hnsw", "ivfpq")
"""The approximate kinds; "flat" (exhaustive) serves a snapshot too small for them."""
TARGET_AGREEMENT = 0.999
"""Share of probes whose nearest identity an index must find as the exact search does."""
TUNING_PROBES = 2000
"""Stored examples searched (each with itself left out) to set an index's parameters."""
HNSW_LINKS = 32  # graph links per vector (FAISS's M)
HNSW_EF_CONSTRUCTION = 80  # candidates explored per insertion: a better graph than 40
TRAIN_PER_CELL = 64  # k-means training vectors per inverted-file cell (FAISS warns below 39)


def faiss_module() -> Any:
    """The faiss module, or a ConfigError that says how to get it."""
    try:
        import faiss
    except ImportError:
        raise ConfigError(
            "approximate search (ivf, hnsw, ivfpq) needs faiss-cpu: pip install "
            "'siamese[ann]' (or faiss-cpu), or use --search exact"
        ) from None
    return faiss


def prepared(vectors: np.ndarray | torch.Tensor, metric: str) -> np.ndarray:
    """(N, D) float32 C-contiguous rows on which squared L2 orders as `metric` does: the
    vectors themselves, or unit vectors for cosine (|a − b|² = 2 − 2 cos)."""
    x = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def rows_by_id(
    vectors: np.ndarray, example_ids: np.ndarray, owners: np.ndarray, metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M, D) prepared rows, (M,) example ids ascending and (M,) identities, in id order
    (no copy of the vectors when they already are: 5 GB at 10M)."""
    ids = np.asarray(example_ids, dtype=np.int64)
    owners = np.asarray(owners, dtype=np.int64)
    if ids.size > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        order = np.argsort(ids, kind="stable")
        vectors, ids, owners = np.asarray(vectors)[order], ids[order], owners[order]
    return prepared(vectors, metric), ids, owners


def to_metric(squared: np.ndarray, metric: str) -> np.ndarray:
    """Squared L2 on prepared rows → distances on `metric` (inf stays inf)."""
    squared = np.clip(np.where(np.isfinite(squared), squared, np.inf), 0.0, None)
    if metric == "cosine":
        return (squared / 2.0).astype(np.float32)
    if metric == "euclidean":
        return np.sqrt(squared).astype(np.float32)
    return squared.astype(np.float32)


def squared_radius(radius: float | None, metric: str) -> float | None:
    """A decision threshold on `metric` as a squared L2 distance on prepared rows."""
    if radius is None or not math.isfinite(radius):
        return None
    if metric == "euclidean":
        return float(radius) ** 2
    if metric == "cosine":
        return 2.0 * float(radius)
    return float(radius)


@dataclass
class Tuning:
    """How an index's search parameters were set, recorded with it.

    Attributes:
        params: the chosen search parameters (nprobe, ef_search, shortlist).
        agreement: the share of tuning probes whose nearest identity matched the exact
            search's at those parameters; probes: how many; target: the share aimed at.
        met: whether `agreement >= target` (else the ladder's last step was kept).
        seconds: the time the tuning took.
        radius: the decision threshold (squared, on prepared rows) the answers were
            compared at; None: the nearest identity itself was compared.
    """

    params: dict[str, int]
    agreement: float
    probes: int
    target: float
    met: bool
    seconds: float
    radius: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class AnnIndex:
    """One FAISS index over a snapshot's rows; FAISS labels are row positions.

    Args:
        kind: "ivf", "hnsw" or "ivfpq".
        index: the FAISS index (read-only when memory-mapped from a file).
        build: how it was built (cells, links, code size, training vectors, seconds).
        params: search parameters (see `set_params`).
    """

    def __init__(self, kind: str, index: Any, build: dict[str, Any], params: dict[str, int]):
        self.kind, self.index, self.build = kind, index, build
        self.params: dict[str, int] = {}
        self.set_params(params)

    @classmethod
    def build_over(cls, kind: str, rows: np.ndarray, seed: int = 0) -> AnnIndex:
        """An index of `kind` over (M, D) prepared float32 rows, labels 0..M−1."""
        faiss = faiss_module()
        if kind not in (*ANN_KINDS, "flat"):
            raise ConfigError(f"index kind {kind!r} is unknown: use {', '.join(ANN_KINDS)}")
        m, dim = rows.shape
        started = time.perf_counter()
        build: dict[str, Any] = {"rows": int(m), "dim": int(dim)}
        if kind == "flat":  # a small gallery: exhaustive, exact
            index = faiss.IndexFlatL2(dim)
            _add_in_chunks(index, rows, labels=False)
            params: dict[str, int] = {}
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, HNSW_LINKS)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            build.update(links=HNSW_LINKS, ef_construction=HNSW_EF_CONSTRUCTION)
            _add_in_chunks(index, rows, labels=False)
            params = {"ef_search": 64}
        else:
            nlist = cells_for(m)
            quantizer = faiss.IndexFlatL2(dim)
            if kind == "ivf":
                index = faiss.IndexIVFFlat(quantizer, dim, nlist)
            else:
                sub = code_bytes_for(dim)
                index = faiss.IndexIVFPQ(quantizer, dim, nlist, sub, 8)
                build["code_bytes"] = sub
            index.own_fields = True
            quantizer.this.disown()  # the index frees its quantizer
            train = _training_sample(rows, nlist, seed)
            index.cp.seed = seed
            index.train(train)
            _add_in_chunks(index, rows, labels=True)
            build.update(cells=nlist, trained_on=int(train.shape[0]))
            params = {"nprobe": 8} if kind == "ivf" else {"nprobe": 8, "shortlist": 256}
        build["seconds"] = round(time.perf_counter() - started, 3)
        return cls(kind, index, build, params)

    def set_params(self, params: dict[str, int]) -> None:
        """Search parameters: nprobe (cells visited, ivf/ivfpq), ef_search (hnsw),
        shortlist (ivfpq: candidates re-ranked exactly)."""
        self.params = {k: int(v) for k, v in params.items()}
        if "nprobe" in self.params:
            self.index.nprobe = max(1, min(self.params["nprobe"], self.index.nlist))
        if "ef_search" in self.params:
            self.index.hnsw.efSearch = max(1, self.params["ef_search"])

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def candidates(self, x: np.ndarray, n: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The n nearest rows found for each of the (Q, D) prepared probes.

        Args:
            rows: the (M, D) prepared rows the index was built over (read for re-ranking).
        Returns:
            ((Q, n) float32 squared L2 distances, ascending, inf where fewer were found;
            (Q, n) int64 row positions, −1 where none).
        """
        q = x.shape[0]
        n = max(1, min(n, self.size))
        if self.kind == "hnsw":
            # HNSW keeps at most ef_search candidates: explore at least as many as asked.
            self.index.hnsw.efSearch = max(self.params["ef_search"], n)
            d, i = self.index.search(x, n)
            self.index.hnsw.efSearch = self.params["ef_search"]
            return _cleaned(d, i)
        if self.kind in ("ivf", "flat"):
            return _cleaned(*self.index.search(x, n))
        wide = max(n, self.params["shortlist"])
        _, i = self.index.search(x, min(wide, self.size))
        found = i >= 0
        picked = rows[np.where(found, i, 0).reshape(-1)].reshape(q, i.shape[1], -1)
        exact = np.square(picked - x[:, None, :]).sum(axis=2, dtype=np.float32)
        exact[~found] = np.inf
        order = np.argsort(exact, axis=1, kind="stable")[:, :n]
        d = np.take_along_axis(exact, order, axis=1)
        i = np.take_along_axis(i, order, axis=1)
        return _cleaned(d, i)

    def ladder(self, n: int) -> list[dict[str, int]]:
        """Search parameters from cheapest to dearest, for tuning at retrieval width n."""
        if self.kind == "flat":
            return [{}]
        if self.kind == "hnsw":
            return [{"ef_search": e} for e in _steps(max(16, n), 8192)]
        nlist = int(self.index.nlist)
        probes = _steps(1, nlist)
        if self.kind == "ivf":
            return [{"nprobe": p} for p in probes]
        short = [max(2 * n, 128), max(8 * n, 512)]
        return [{"nprobe": p, "shortlist": s} for s in short for p in probes]

    def save(self, path: Path) -> None:
        faiss_module().write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, kind: str, build: dict[str, Any], params: dict[str, int]) -> AnnIndex:
        """An index read from `path`, memory-mapped (shared by every process on the host
        that maps the same file; read-only: a loaded index is never added to)."""
        faiss = faiss_module()
        flag = faiss.IO_FLAG_MMAP_IFC if kind in ("hnsw", "flat") else faiss.IO_FLAG_MMAP
        return cls(kind, faiss.read_index(str(path), flag), build, params)


MAX_CELLS = 8192
"""Inverted-file cells at most: k-means on 2 cores for 12,649 cells (4√10M) takes several
minutes more to train and to assign 10M rows, and the search visits cells by the dozen."""


def _steps(first: int, last: int) -> list[int]:
    """first, then about ×1.5 a step (1, 2, 3, 4, 6, 8, 12, 16, 24, …), up to last, which
    ends the list: a finer ladder than doubling, whose last step could cost 2× what the
    target needed."""
    out = [first]
    while out[-1] < last:
        step = out[-1]
        power = 1 << max(0, step.bit_length() - 1)
        nxt = power * 3 // 2 if step < power * 3 // 2 else power * 2
        out.append(min(last, max(nxt, step + 1)))
    return out


def cells_for(m: int) -> int:
    """Inverted-file cells for m rows: 4√m (FAISS's guidance for 1M–10M is 4√m to 16√m),
    at most `MAX_CELLS`, each with at least `TRAIN_PER_CELL` rows to train on."""
    return int(max(1, min(4 * math.sqrt(m), m // TRAIN_PER_CELL, MAX_CELLS)))


def code_bytes_for(dim: int) -> int:
    """Product-quantiser sub-vectors (one byte each) for dim: dim / 8 (16 for 128-d), the
    largest divisor of dim at most that."""
    for sub in range(max(1, dim // 8), 0, -1):
        if dim % sub == 0:
            return sub
    return 1


def _training_sample(rows: np.ndarray, nlist: int, seed: int) -> np.ndarray:
    m = rows.shape[0]
    count = min(m, max(TRAIN_PER_CELL * nlist, 10_000))
    if count == m:
        return np.ascontiguousarray(rows)
    pick = np.sort(np.random.default_rng(seed).choice(m, count, replace=False))
    return np.ascontiguousarray(rows[pick])


def _add_in_chunks(index: Any, rows: np.ndarray, labels: bool, chunk: int = 262_144) -> None:
    """Add rows in chunks (a memory-mapped file is read a chunk at a time)."""
    for start in range(0, rows.shape[0], chunk):
        part = np.ascontiguousarray(rows[start : start + chunk], dtype=np.float32)
        if labels:
            index.add_with_ids(part, np.arange(start, start + part.shape[0], dtype=np.int64))
        else:
            index.add(part)


def _cleaned(d: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i = np.asarray(i, dtype=np.int64)
    d = np.where(i >= 0, d, np.inf).astype(np.float32)
    return d, i


def tune(
    index: AnnIndex,
    rows: np.ndarray,
    owners: np.ndarray,
    width: int,
    target: float = TARGET_AGREEMENT,
    radius: float | None = None,
    probes: int = TUNING_PROBES,
    seed: int = 0,
) -> Tuning:
    """Set `index`'s parameters to the cheapest step of its ladder whose answers agree with
    the exact search's on at least `target` of `probes` stored examples, each searched with
    itself left out (see the module's docstring).

    Args:
        rows: (M, D) prepared rows the index holds; owners: (M,) int64 identity of each row
            (−1 for a row no longer in the gallery, never sampled nor counted).
        width: the examples the gallery retrieves per probe.
        radius: the gallery's decision threshold as a squared distance on prepared rows:
            an answer is the nearest identity within it, else "unknown" (two searches that
            both find nothing within it agree). None: the nearest identity itself must
            agree, however far (for decisions on normalised scores).
    """
    started = time.perf_counter()
    alive = np.flatnonzero(owners >= 0)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(alive, min(probes, alive.size), replace=False))
    x = np.ascontiguousarray(rows[sample])
    # The exact truth: each probe's nearest other live row, over every live row.
    exact = ExactSearch("sqeuclidean", "nearest", rows.shape[1])
    exact.reset(rows[alive], alive.astype(np.int64), owners[alive])
    d_true, where = exact.nearest_examples(torch.from_numpy(x), 2)
    pos_true = alive[where.numpy()]
    own = sample[:, None]
    first = np.where(pos_true[:, 0] != sample, 0, 1)
    truth_d = np.take_along_axis(d_true.numpy(), first[:, None], axis=1)[:, 0]
    truth = owners[np.take_along_axis(pos_true, first[:, None], axis=1)[:, 0]]
    chosen: dict[str, int] | None = None
    agreement = 0.0
    steps = index.ladder(width)
    for params in steps:
        index.set_params(params)
        d, i = index.candidates(x, width + 1, rows)
        found = np.where(i >= 0, owners[np.clip(i, 0, None)], -1)
        usable = (i != own) & (found >= 0)
        first_usable = np.argmax(usable, axis=1)
        got = np.take_along_axis(found, first_usable[:, None], axis=1)[:, 0]
        got_d = np.take_along_axis(d, first_usable[:, None], axis=1)[:, 0]
        got = np.where(usable.any(axis=1), got, -1)
        # Agreement: the same answer, or another identity at the same distance (a tie).
        tie = np.abs(got_d - truth_d) <= 1e-5 * (1.0 + np.abs(truth_d))
        if radius is None:
            same = (got == truth) | tie
        else:
            same = np.where(got_d <= radius, got, -1) == np.where(truth_d <= radius, truth, -1)
            same |= tie
        agreement = float(np.mean(same)) if sample.size else 1.0
        chosen = params
        if agreement >= target:
            break
    assert chosen is not None
    index.set_params(chosen)
    return Tuning(
        chosen,
        round(agreement, 6),
        int(sample.size),
        target,
        agreement >= target,
        round(time.perf_counter() - started, 3),
        None if radius is None else float(radius),
    )
