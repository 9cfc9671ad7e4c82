"""The faces of a photo library, embedded once: every photo is hashed, and its faces (found
by the model's face step: the main face, or every face of a group photo) are embedded only if
the cache does not hold them yet for this model.

The cache is an SQLite file (by default `OUT/embeddings.sqlite`) keyed by the photo's SHA-256,
the model's fingerprint and the face mode; it is committed after every batch, so a run stopped
half-way resumes where it stopped, a photo moved or renamed is not embedded again, and
re-clustering with other settings embeds nothing. Photos that cannot be read are listed, not
cached (a fixed file is read next time) and stop nothing.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from siamese.errors import ConfigError, DataError, OutputError
from siamese.recognition.model_inputs import Preprocessing
from siamese.recognition.recognition_model import RecognitionModel

BATCH_PHOTOS = 32
"""Photos prepared, embedded and committed to the cache together."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS photos (
    sha256 TEXT NOT NULL, model TEXT NOT NULL, every_face INTEGER NOT NULL,
    faces INTEGER NOT NULL,
    PRIMARY KEY (sha256, model, every_face)
);
CREATE TABLE IF NOT EXISTS faces (
    sha256 TEXT NOT NULL, model TEXT NOT NULL, every_face INTEGER NOT NULL,
    face INTEGER NOT NULL, box TEXT, embedding BLOB NOT NULL,
    PRIMARY KEY (sha256, model, every_face, face)
);
"""


@dataclass(frozen=True)
class PhotoFace:
    """One face of the library (or one whole image, for a model without a face step).

    Attributes:
        file: the photo's path as given.
        face: its place among the photo's faces (0: the largest).
        box: [left, top, right, bottom] in the photo's pixels, or None (a whole image).
        sha256: the photo file's SHA-256.
    """

    file: str
    face: int
    box: list[float] | None
    sha256: str


@dataclass(frozen=True)
class LibraryFaces:
    """The faces of a photo library and their embeddings.

    Attributes:
        faces: one record per face, photo by photo in the order given.
        z: (F, D) float32 embeddings, row i of faces[i].
        photos: the number of photos read.
        no_face: photos in which the face step found no face.
        unreadable: (photo, reason) of files that are not readable images.
        embedded: photos embedded in this call (the others came from the cache).
    """

    faces: list[PhotoFace]
    z: np.ndarray
    photos: int
    no_face: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    embedded: int = 0


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB pieces)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def photo_faces(
    path: str, pre: Preprocessing, every_face: bool
) -> list[tuple[list[float] | None, np.ndarray]]:
    """The faces of one photo as (box, model input (C, H, W)), largest first; one (None,
    whole image) for a model without a face step; [] when no face is found.

    Raises:
        DataError: the file is missing or not a readable image (the reason says which).
    """
    from siamese.data.folders.face_crops import every_face_crop
    from siamese.data.image_files import BadImageError, decode_image
    from siamese.recognition.model_inputs import model_input

    try:
        if pre.face is None:
            return [(None, model_input([path], pre)[0])]
        channels, height, width = pre.input_shape
        photo = decode_image(path, 3, None, "stretch")
        return every_face_crop(
            photo, path, pre.face, int(channels), (int(height), int(width)), "stretch",
            "all" if every_face else "largest",
        )  # fmt: skip
    except BadImageError as err:
        raise DataError(f"{err.path}: {err.reason}") from None


@dataclass(frozen=True)
class _Prepared:
    """One photo prepared in a worker: its faces, or why it could not be read."""

    index: int
    faces: list[tuple[list[float] | None, np.ndarray]]
    error: str | None = None


class _PhotoBatches:
    """Item i: batch i of (index, path) photos prepared (a map-style dataset for DataLoader)."""

    def __init__(self, pre: Preprocessing, todo: list[tuple[int, str]], every_face: bool):
        self.pre, self.todo, self.every_face = pre, todo, every_face

    def __len__(self) -> int:
        return -(-len(self.todo) // BATCH_PHOTOS)

    def __getitem__(self, i: int) -> list[_Prepared]:
        out = []
        for index, path in self.todo[i * BATCH_PHOTOS : (i + 1) * BATCH_PHOTOS]:
            try:
                out.append(_Prepared(index, photo_faces(path, self.pre, self.every_face)))
            except DataError as err:
                out.append(_Prepared(index, [], str(err)))
        return out


class EmbeddingCache:
    """The SQLite cache of a library's face embeddings (see the module's docstring)."""

    def __init__(self, path: Path, model: str, every_face: bool) -> None:
        self.path, self.model, self.every_face = Path(path), model, int(every_face)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path)
            self.db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise OutputError(
                f"{self.path}: cannot open the embedding cache ({err}); choose a writable "
                "--out folder, or delete the file if it is not an SQLite database"
            ) from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def known(self, hashes: Sequence[str]) -> set[str]:
        """The hashes among `hashes` the cache holds (faces or none found) for this model."""
        found: set[str] = set()
        for chunk in _chunks(list(dict.fromkeys(hashes)), 500):
            rows = self.db.execute(
                f"SELECT sha256 FROM photos WHERE model = ? AND every_face = ? "
                f"AND sha256 IN ({','.join('?' * len(chunk))})",
                (self.model, self.every_face, *chunk),
            )
            found.update(r[0] for r in rows)
        return found

    def store(self, photos: list[tuple[str, list[list[float] | None]]], z: np.ndarray) -> None:
        """One transaction: each (sha256, boxes) photo and its faces' rows of (F, D) `z`."""
        row = 0
        with self.db:
            for sha, boxes in photos:
                self.db.execute(
                    "INSERT OR REPLACE INTO photos VALUES (?, ?, ?, ?)",
                    (sha, self.model, self.every_face, len(boxes)),
                )
                for face, box in enumerate(boxes):
                    self.db.execute(
                        "INSERT OR REPLACE INTO faces VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            sha,
                            self.model,
                            self.every_face,
                            face,
                            None if box is None else json.dumps(box),
                            np.ascontiguousarray(z[row], dtype=np.float32).tobytes(),
                        ),
                    )
                    row += 1

    def faces(self, hashes: Sequence[str]) -> dict[str, list[tuple[list[float] | None, bytes]]]:
        """sha256 → its faces [(box, embedding bytes)] in face order ([] when none found)."""
        out: dict[str, list[tuple[list[float] | None, bytes]]] = {}
        for chunk in _chunks(list(dict.fromkeys(hashes)), 500):
            marks = ",".join("?" * len(chunk))
            args = (self.model, self.every_face, *chunk)
            for (sha,) in self.db.execute(
                f"SELECT sha256 FROM photos WHERE model = ? AND every_face = ? "
                f"AND sha256 IN ({marks})",
                args,
            ):
                out[sha] = []
            for sha, box, blob in self.db.execute(
                f"SELECT sha256, box, embedding FROM faces WHERE model = ? AND every_face = ? "
                f"AND sha256 IN ({marks}) ORDER BY sha256, face",
                args,
            ):
                out[sha].append((None if box is None else json.loads(box), blob))
        return out


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def embed_library(
    recognizer: RecognitionModel,
    photos: Sequence[Path | str],
    cache_path: Path,
    every_face: bool = False,
    workers: int = 0,
    progress: bool = False,
) -> LibraryFaces:
    """The faces of `photos` and their embeddings, embedding only what `cache_path` lacks.

    Args:
        recognizer: the model (its face step finds the faces).
        photos: image files (a photo given twice is read once).
        cache_path: the SQLite embedding cache (created if missing).
        every_face: every face of each photo (group photos) instead of its main face.
        workers: processes finding faces while the model embeds (0: in this process).
    Raises:
        ConfigError: every_face with a model without a face step.
        DataError: no photos given.
    """
    from siamese.evaluation.embed import count_bar
    from siamese.recognition.file_embedding import items_ahead

    pre = recognizer.preprocessing
    if every_face and pre.face is None:
        raise ConfigError(
            "--every-face: this model declares no face step (it was not trained on face "
            "crops), so it cannot find the faces in a photo; cluster whole images instead"
        )
    paths = [str(p) for p in dict.fromkeys(str(p) for p in photos)]
    if not paths:
        raise DataError("no photos to cluster: give image files or folders holding them")
    hashes: list[str | None] = []
    unreadable: dict[int, str] = {}
    with count_bar(progress) as bar:
        task = bar.add_task(f"hashing {len(paths):,} photos", total=len(paths)) if bar else None
        for i, path in enumerate(paths):
            try:
                hashes.append(file_sha256(Path(path)))
            except OSError as err:
                hashes.append(None)
                unreadable[i] = f"{path}: cannot read it ({err.strerror or err})"
            if bar is not None:
                bar.advance(task)
    embedded = 0
    with EmbeddingCache(cache_path, recognizer.fingerprint, every_face) as cache:
        known = cache.known([h for h in hashes if h is not None])
        todo, queued = [], set()
        for i, (path, sha) in enumerate(zip(paths, hashes, strict=True)):
            if sha is not None and sha not in known and sha not in queued:
                todo.append((i, path))
                queued.add(sha)
        with count_bar(progress and bool(todo)) as bar:
            task = bar.add_task(f"embedding {len(todo):,} photos", total=len(todo)) if bar else None
            for batch in items_ahead(_PhotoBatches(pre, todo, every_face), workers):
                stored, crops = [], []
                for item in batch:
                    if item.error is not None:
                        unreadable[item.index] = item.error
                        continue
                    stored.append((hashes[item.index], [box for box, _ in item.faces]))
                    crops += [crop for _, crop in item.faces]
                z = (
                    np.asarray(_as_numpy(recognizer.embed_prepared(np.stack(crops))))
                    if crops
                    else np.empty((0, recognizer.embedding_dim), np.float32)
                )
                cache.store(stored, z)  # type: ignore[arg-type]
                embedded += len(stored)
                if bar is not None:
                    bar.advance(task, len(batch))
        found = cache.faces([h for h in hashes if h is not None])
    failed = {hashes[i]: reason for i, reason in unreadable.items() if hashes[i] is not None}
    for i, sha in enumerate(hashes):  # a copy of an unreadable photo (read once) is unreadable
        if i not in unreadable and sha in failed:
            unreadable[i] = failed[sha]
    faces: list[PhotoFace] = []
    rows: list[bytes] = []
    no_face: list[str] = []
    for i, (path, sha) in enumerate(zip(paths, hashes, strict=True)):
        if i in unreadable or sha is None:
            continue
        if not found.get(sha):
            no_face.append(path)
            continue
        for face, (box, blob) in enumerate(found[sha]):
            faces.append(PhotoFace(path, face, box, sha))
            rows.append(blob)
    dim = recognizer.embedding_dim
    z = (
        np.frombuffer(b"".join(rows), dtype=np.float32).reshape(len(rows), dim).copy()
        if rows
        else np.empty((0, dim), np.float32)
    )
    return LibraryFaces(
        faces,
        z,
        len(paths),
        no_face,
        [(paths[i], unreadable[i]) for i in sorted(unreadable)],
        embedded,
    )


def _as_numpy(z: Any) -> np.ndarray:
    return z.detach().cpu().numpy() if hasattr(z, "detach") else np.asarray(z)
