"""The gallery's search as a cache of its database: brought in step with the database's write
counter, updated in place by this process's own writes, and persisted as a snapshot beside
the database (`gallery_index_files`) so that a restart neither reads every embedding nor
rebuilds an index.

On each check (`fresh`): when the counter moved, the example ids and identities are read
(not the embeddings); the snapshot is read if another process rewrote it (or built, under a
lock, when it is missing, damaged or of other embeddings); the examples added since it was
made are read by id and searched exactly beside it, those removed are masked. When the
changes reach `REWRITE_SHARE` of the snapshot, the process that sees it writes a new one:
the new rows appended to the index (no retraining), or the index rebuilt when removed rows
or growth since training reach `REBUILD_SHARE`.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from siamese.recognition import gallery_index
from siamese.recognition.gallery_index_files import (
    Snapshot,
    folder_lock,
    index_folder,
    read_snapshot,
    stamp_of,
    write_snapshot,
)
from siamese.recognition.gallery_search import (
    ExactSearch,
    IndexSearch,
    make_search,
    search_for_size,
)
from siamese.recognition.gallery_store import GalleryStore

log = logging.getLogger(__name__)

REWRITE_SHARE = 0.05
"""Changes since the snapshot (examples added or removed), as a share of it, from which a new
snapshot is written (at least `REWRITE_AT_LEAST` changes)."""
REWRITE_AT_LEAST = 1000
REBUILD_SHARE = 0.25
"""Removed rows, or rows added since the index was trained, as a share of it, from which an
approximate index is rebuilt (retrained and retuned) instead of appended to."""


class SearchCache:
    """The search of one open gallery.

    Args:
        store: the gallery's database.
        search: "auto", "exact", "ivf", "hnsw" or "ivfpq" ("auto" resolved by the number
            of examples when opened).
        dim: the model's embedding size.
        target: the agreement with exact search an index is tuned to (None: 99.9 %).
        persist: keep a snapshot beside the database (False: rebuild in memory each start).
    """

    def __init__(
        self,
        store: GalleryStore,
        search: str,
        dim: int,
        target: float | None = None,
        persist: bool = True,
    ) -> None:
        self.store, self.dim, self.persist = store, dim, persist
        settings = store.settings()
        self.metric, self.scoring = settings["metric"], settings["scoring"]
        self.asked = search
        self.kind = search_for_size(search, store.counts()[1], self.scoring)
        self.target = gallery_index.TARGET_AGREEMENT if target is None else float(target)
        self.search = make_search(self.kind, self.metric, self.scoring, dim, self.target)
        self.generation = -1
        self.names: dict[int, str] = {}
        self.snapshot: Snapshot | None = None
        self.status: dict[str, Any] = {}

    def invalidate(self) -> None:
        """Make the next `fresh` read the database again."""
        self.generation = -1

    def folder(self, settings: dict[str, Any]) -> Path:
        return index_folder(self.store.location, settings["created_at"], self.kind)

    def key(self, settings: dict[str, Any]) -> dict[str, Any]:
        """What a snapshot must have been made for to be used."""
        return {
            "model_fingerprint": settings["model_fingerprint"],
            "embedding_epoch": int(settings.get("embedding_epoch") or 0),
            "created_at": settings["created_at"],
            "metric": settings["metric"],
            "dim": self.dim,
            "kind": self.kind,
            "target": (self.kind != "exact" and self.target) or None,
        }

    # ------------------------------------------------------------------------------------
    # Keeping in step

    def fresh(self, settings: dict[str, Any]) -> bool:
        """Bring the search in step with the database; True when it had to."""
        if self.store.generation() == self.generation:
            return False
        if isinstance(self.search, IndexSearch):
            self.search.radius = decision_radius(settings)
        if not self.persist:
            vectors, ids, owners, names, generation = self.store.all_embeddings(self.dim)
            self.names = names
            self.search.reset(vectors, ids, owners)
            self.generation = generation
            return True
        started = time.perf_counter()
        snapshot = self.snapshot
        if snapshot is None or stamp_of(snapshot.folder) != snapshot.stamp:
            snapshot = self._read_or_build(settings)
        ids, owners, names, generation = self.store.example_owners()
        self.names = names
        self._adopt(snapshot, ids, owners)
        self.generation = generation
        self.status["synced_seconds"] = round(time.perf_counter() - started, 3)
        self.after_change(settings)
        return True

    def after_change(self, settings: dict[str, Any]) -> None:
        """After the search changed in place: write a new snapshot when the changes since the
        last one have grown (`REWRITE_SHARE`)."""
        if not self.persist or self.snapshot is None:
            return
        # A snapshot that could not be written is rebuilt in memory less often.
        share = REWRITE_SHARE if self.snapshot.stamp else REBUILD_SHARE
        if self._changes() < max(REWRITE_AT_LEAST, share * self.snapshot.ids.size):
            return
        self._rewrite(settings)

    def apply(self, generation: int, update: Callable[[], None] | None, settings: Any) -> None:
        """After this process's write at `generation`: apply `update` to the search when it
        was in step just before, else leave it for `fresh`."""
        if update is not None and self.generation == generation - 1:
            update()
            self.generation = generation
            self.after_change(settings)
        else:
            self.generation = -1

    # ------------------------------------------------------------------------------------
    # Snapshots

    def _read_or_build(self, settings: dict[str, Any]) -> Snapshot:
        folder, key = self.folder(settings), self.key(settings)
        snapshot, why = read_snapshot(folder, key)
        if snapshot is not None:
            return snapshot
        with folder_lock(folder):
            snapshot, why = read_snapshot(folder, key)  # another worker may have built it
            if snapshot is not None:
                return snapshot
            log.info("building the %s search index of %s: %s", self.kind, folder, why)
            self.status["rebuilt_because"] = why
            vectors, ids, owners, _, generation = self.store.all_embeddings(self.dim)
            return self._write(folder, key, vectors, ids, owners, generation)

    def _write(
        self,
        folder: Path,
        key: dict[str, Any],
        vectors: np.ndarray,
        ids: np.ndarray,
        owners: np.ndarray,
        generation: int,
        index: gallery_index.AnnIndex | None = None,
    ) -> Snapshot:
        """Write a snapshot of these rows (building and tuning an index unless given), then
        read it back memory-mapped. Falls back to the rows in memory when the folder cannot
        be written (a read-only place): correct, only slower to start next time."""
        rows, ids, owners = gallery_index.rows_by_id(vectors, ids, owners, self.metric)
        tuning = None
        if isinstance(self.search, IndexSearch):
            index, tuning = self.search.built(rows, owners, index)
        try:
            write_snapshot(folder, key, rows, ids, index, tuning, generation)
        except OSError as err:
            log.warning("cannot write the search index %s (%s): kept in memory", folder, err)
            self.status["not_persisted"] = str(err)
            return Snapshot(rows, ids, index, tuning, generation, folder, stamp="")
        snapshot, why = read_snapshot(folder, key)
        if snapshot is None:  # written and unreadable at once: a defect, say so
            raise RuntimeError(f"{folder}: a search index just written cannot be read: {why}")
        return snapshot

    def _adopt(self, snapshot: Snapshot, ids: np.ndarray, owners: np.ndarray) -> None:
        """Search `snapshot` with the database's current examples (`ids`, `owners`)."""
        self.snapshot = snapshot
        rows_ids = snapshot.ids
        where = np.searchsorted(rows_ids, ids).clip(0, max(0, rows_ids.size - 1))
        known = rows_ids[where] == ids if rows_ids.size else np.zeros(ids.size, bool)
        row_owners = np.full(rows_ids.size, -1, dtype=np.int64)
        row_owners[where[known]] = owners[known]
        new_ids, new_owners = ids[~known], owners[~known]
        new = (
            self.store.embeddings_by_id(new_ids, self.dim)
            if new_ids.size
            else np.empty((0, self.dim), np.float32)
        )
        self.status.update(snapshot_generation=snapshot.generation, added_since=int(new_ids.size))
        if isinstance(self.search, IndexSearch):
            self.search.adopt(
                snapshot.rows,
                rows_ids,
                snapshot.index,
                snapshot.tuning,
                row_owners,
                (new, new_ids, new_owners),
            )
            return
        alive = row_owners >= 0
        rows = snapshot.rows if alive.all() else snapshot.rows[alive]
        vectors = np.concatenate([rows, new]) if new_ids.size else rows
        with warnings.catch_warnings():  # a read-only memory map: searched, never written
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            self.search.reset(
                vectors,
                np.concatenate([rows_ids[alive], new_ids]),
                np.concatenate([row_owners[alive], new_owners]),
            )

    def _changes(self) -> int:
        if isinstance(self.search, IndexSearch):
            return self.search.changes()
        # An exact search: its rows not in the snapshot, and the snapshot's it no longer has.
        assert self.snapshot is not None
        mine = self.search.example_ids.numpy()
        shared = np.isin(mine, self.snapshot.ids, assume_unique=True).sum()
        return int(mine.size - shared) + int(self.snapshot.ids.size - shared)

    def _rewrite(self, settings: dict[str, Any]) -> None:
        """Write a new snapshot of the search as it is now."""
        assert self.snapshot is not None
        folder, key = self.folder(settings), self.key(settings)
        with folder_lock(folder):
            if stamp_of(folder) != self.snapshot.stamp:
                self.invalidate()  # another process rewrote it meanwhile: read it next
                return
            search = self.search
            generation = self.generation
            if isinstance(search, ExactSearch):
                self.snapshot = self._write(
                    folder,
                    key,
                    search.vectors.numpy(),
                    search.example_ids.numpy(),
                    search.owners.numpy(),
                    generation,
                )
                return
            snapshot = self.snapshot
            added = search.added
            vectors_new = gallery_index.prepared(added.vectors.numpy(), self.metric)
            removed = int(snapshot.ids.size) - search.alive
            trained = int((search.index.build if search.index else {}).get("rows", 0))
            grown = snapshot.ids.size + len(added) - trained
            rebuild = (
                search.index is None
                or search.index.kind == "flat"
                or removed > REBUILD_SHARE * max(1, snapshot.ids.size)
                or grown > REBUILD_SHARE * max(1, trained)
            )
            alive = search.row_owners >= 0
            if rebuild:
                vectors = np.concatenate([np.asarray(snapshot.rows)[alive], vectors_new])
                ids = np.concatenate([snapshot.ids[alive], added.example_ids.numpy()])
                owners = np.concatenate([search.row_owners[alive], added.owners.numpy()])
                fresh = self._write(folder, key, vectors, ids, owners, generation)
            else:
                index = _appended(snapshot, vectors_new, alive)
                vectors = np.concatenate([np.asarray(snapshot.rows), vectors_new])
                ids = np.concatenate([snapshot.ids, added.example_ids.numpy()])
                owners = np.concatenate([search.row_owners, added.owners.numpy()])
                fresh = self._write(folder, key, vectors, ids, owners, generation, index)
            self.snapshot = fresh
        db_ids, db_owners, names, generation = self.store.example_owners()
        self.names = names
        self._adopt(fresh, db_ids, db_owners)
        self.generation = generation


def _appended(
    snapshot: Snapshot, vectors_new: np.ndarray, alive: np.ndarray
) -> gallery_index.AnnIndex:
    """A writable copy of the snapshot's index with the new rows added after its rows (and,
    for inverted files, the removed rows taken out; a graph keeps them, masked)."""
    assert snapshot.index is not None
    faiss = gallery_index.faiss_module()
    copy = faiss.read_index(str(snapshot.folder / "index.faiss"))  # in memory, writable
    first = int(snapshot.ids.size)
    if snapshot.index.kind == "hnsw":
        copy.add(np.ascontiguousarray(vectors_new))
    else:
        dead = np.flatnonzero(~alive).astype(np.int64)
        if dead.size:
            copy.remove_ids(faiss.IDSelectorArray(dead.size, faiss.swig_ptr(dead)))
        labels = np.arange(first, first + vectors_new.shape[0], dtype=np.int64)
        copy.add_with_ids(np.ascontiguousarray(vectors_new), labels)
    build = {**snapshot.index.build, "appended": vectors_new.shape[0]}
    return gallery_index.AnnIndex(snapshot.index.kind, copy, build, snapshot.index.params)


def decision_radius(settings: dict[str, Any]) -> float | None:
    """The distance within which the gallery answers an identity (its decision threshold),
    or None when it decides on normalised scores (then an index is tuned on the nearest
    identity itself)."""
    decision = settings.get("decision")
    if decision is None:
        return float(settings["threshold"])
    if decision.get("normalised_threshold") is not None:
        return None
    return float(decision["threshold"])
