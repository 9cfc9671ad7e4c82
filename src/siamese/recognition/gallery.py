"""A persistent gallery: enrol identities from one or more images, identify new images with
strangers answered "unknown", verify a claimed identity.

    from siamese.recognition import Gallery, Recognizer

    recognizer = Recognizer.load("runs/faces")
    gallery = Gallery.create("staff.sqlite", recognizer, far=1e-3)
    gallery.enroll("ada", ["ada.jpg"])
    [answer] = gallery.identify("visitor.jpg")
    answer.identity            # "ada", or None when the best match is beyond the threshold

The model is a `Recognizer` (PyTorch) or an `OnnxRecognizer` (an ONNX export, run by
onnxruntime): `load_recognizer` picks by the folder, and both give the same embeddings, under
the same fingerprint, so one gallery opens with either. (The gallery's own search and database
code imports torch and SQLAlchemy either way; only the embeddings come from onnxruntime.)

The database (`gallery_store`) is the source of truth: the gallery is bound to one model (its
weights' fingerprint), one decision threshold at a false-accept rate chosen at creation, and
one scoring (nearest example, or centroid, per identity). Every decision reports the threshold
and the rate it used. The search (`gallery_search`) is a cache of the database, rebuilt when
another process has written since it was read.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import sqlalchemy as sa
import torch
from PIL import Image

from siamese.errors import ConfigError, ConflictError, DataError, NoFaceError, NotFoundError
from siamese.recognition.decisions import Thresholds, accepts
from siamese.recognition.gallery_search import check_choices, make_search
from siamese.recognition.gallery_store import (
    ExampleRow,
    GalleryStore,
    embedding_blob,
    examples_table,
    identities_table,
    now,
)
from siamese.recognition.images import (
    FaceInputs,
    ImageInput,
    PreparedInputs,
    as_image_list,
    describe,
)
from siamese.recognition.onnx_recognizer import OnnxRecognizer, device_providers, is_onnx_export
from siamese.recognition.recognizer import Recognizer

UNKNOWN = "unknown"
NO_FACE_LABEL = "no face"


class GalleryModel(Protocol):
    """What a gallery uses of its model: `Recognizer` and `OnnxRecognizer` both offer it.
    Embeddings and inputs may be torch tensors or numpy arrays; the gallery takes either."""

    model_dir: Path
    head: Any  # a pair classifier's head (refused), or None

    @property
    def fingerprint(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def embedding_dim(self) -> int: ...
    @property
    def thresholds(self) -> Thresholds | None: ...
    def threshold(self, far: float | None = None) -> tuple[float, float]: ...
    def prepare_faces(self, images: ImageInput | Sequence[ImageInput]) -> PreparedInputs: ...
    def every_face(self, images: ImageInput | Sequence[ImageInput]) -> FaceInputs: ...
    def embed_prepared(self, x: Any, batch_size: int = 256) -> Any: ...
    def embed(self, images: ImageInput | Sequence[ImageInput], batch_size: int = 256) -> Any: ...
    def dissimilarity(self, z1: Any, z2: Any) -> Any: ...


def load_recognizer(path: Path | str, device: str | None = None) -> Recognizer | OnnxRecognizer:
    """The model at `path`: an `OnnxRecognizer` for a `siamese export --format onnx` folder
    (it holds export.json), else a `Recognizer` (a run or model folder).

    Args:
        device: auto (None), cpu, cuda, cuda:N or mps (`siamese.devices`); for an export,
            onnxruntime's provider for it (`device_providers`).
    Raises:
        CheckpointError: no model there, or its files altered or incomplete.
        ConfigError: an ONNX export without onnxruntime installed; a device not here.
    """
    if is_onnx_export(path):
        recognizer = OnnxRecognizer.load(path, providers=device_providers(device))
        wanted_cuda = (device or "").strip().lower().startswith("cuda")
        if wanted_cuda and "CUDAExecutionProvider" not in recognizer.providers:
            # onnxruntime falls back to the CPU quietly when its CUDA provider fails to load
            raise ConfigError(
                f"--device {device}: onnxruntime could not start its CUDA provider (a CUDA or "
                "cuDNN library missing or of another version; its log says which): install "
                "the onnxruntime-gpu matching this machine's CUDA, or use --device cpu"
            )
        return recognizer
    return Recognizer.load(path, device=device or "auto")


@dataclass(frozen=True)
class Candidate:
    """One identity a probe may be: its name and the probe's distance to it."""

    identity: str
    distance: float


@dataclass(frozen=True)
class Identification:
    """The answer for one probe image.

    Attributes:
        source: the probe's path, or "image N".
        identity: the best identity when its distance is within the threshold, else None
            (`label` is then "unknown").
        distance: the best identity's distance (inf for an empty gallery, or no face).
        candidates: the k best identities, best first, accepted or not.
        threshold, far: the decision threshold and the false-accept rate it was set at.
        no_face: the model's face step found no face in the image (its on_no_face is
            "skip", or every face was asked for; `label` is then "no face", and nothing was
            compared).
        box: with every face asked for, this face's [left, top, right, bottom] in the photo.
    """

    source: str
    identity: str | None
    distance: float
    candidates: list[Candidate]
    threshold: float
    far: float | None
    no_face: bool = False
    box: list[float] | None = None

    @property
    def label(self) -> str:
        if self.no_face:
            return NO_FACE_LABEL
        return self.identity if self.identity is not None else UNKNOWN

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "identity": self.identity,
            "decision": self.label,
            "distance": _finite(self.distance),
            "threshold": self.threshold,
            "far": self.far,
            "candidates": [
                {"identity": c.identity, "distance": _finite(c.distance)} for c in self.candidates
            ],
            "no_face": self.no_face,
            "box": self.box,
        }


@dataclass(frozen=True)
class Verification:
    """Whether an image shows a claimed identity."""

    identity: str
    source: str
    distance: float
    same: bool
    threshold: float
    far: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Enrollment:
    """What one `enroll` call did.

    Attributes:
        identity: the identity enrolled into; created: whether this call created it.
        added: the sources of the examples stored.
        already_enrolled: sources whose image this identity already had (nothing stored).
        no_face: sources in which the model's face step found no face (left out: its
            on_no_face is "skip").
    """

    identity: str
    created: bool
    added: list[str]
    already_enrolled: list[str] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IdentityInfo:
    name: str
    examples: int
    metadata: dict[str, Any] | None
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "identity": self.name,
            "examples": self.examples,
            "metadata": self.metadata,
            "created_at": self.created_at,
        }


class Gallery:
    """Enrolled identities in a database, searched with one model.

    Use `Gallery.create` or `Gallery.open`; `close` (or a `with` block) releases the database.
    """

    def __init__(
        self, store: GalleryStore, recognizer: GalleryModel, search: str = "exact", nprobe: int = 16
    ) -> None:
        self.store = store
        self.recognizer = recognizer
        settings = store.settings()
        self.settings = settings
        if settings["model_fingerprint"] != recognizer.fingerprint:
            raise ConfigError(
                f"{store.location}: the gallery holds embeddings of model "
                f"{settings['model_fingerprint'][:12]}… ({settings.get('model_path')}), not of "
                f"{recognizer.model_dir} ({recognizer.fingerprint[:12]}…); open it with that "
                "model, or move it to this one with `siamese gallery reembed` (needs the "
                "images, kept with --keep-images)"
            )
        if recognizer.head is not None:
            raise ConfigError(
                f"{recognizer.model_dir} trained a pair classifier, which scores pairs, not "
                "distances a gallery can search; use a model trained with triplet or "
                "contrastive loss"
            )
        self.search_kind = search
        self.search = make_search(
            search, settings["metric"], settings["scoring"], recognizer.embedding_dim, nprobe
        )
        self.search_generation = -1
        self.names: dict[int, str] = {}

    # ------------------------------------------------------------------------------------
    # Creating and opening

    @classmethod
    def create(
        cls,
        location: Path | str,
        recognizer: GalleryModel,
        far: float | None = None,
        scoring: str = "nearest",
        keep_images: bool = False,
        search: str = "exact",
    ) -> Gallery:
        """A new gallery bound to `recognizer`'s model (a `Recognizer` or an `OnnxRecognizer`).

        Args:
            location: an SQLite file path (created) or a database URL.
            far: the false-accept rate of the decision threshold, one the model's calibration
                supports (default: the smallest it supports).
            scoring: "nearest" (an identity scores its closest example) or "centroid".
            keep_images: store each enrolled image (PNG of the model's input, or the file's
                bytes), so that `reembed` can move the gallery to another model.
            search: "exact" or "faiss".
        Raises:
            ConfigError: a gallery is already there; the model has no threshold at `far`.
        """
        check_choices(scoring, search)  # before anything is written
        threshold, rate = recognizer.threshold(far)
        t = recognizer.thresholds
        settings = {
            "model_fingerprint": recognizer.fingerprint,
            "model_path": str(recognizer.model_dir),
            "embedding_dim": recognizer.embedding_dim,
            "metric": recognizer.metric,
            "scoring": scoring,
            "far": rate,
            "threshold": threshold,
            "calibrated_on": t.calibrated_on if t else "",
            "keep_images": bool(keep_images),
            "created_at": now(),
        }
        store = GalleryStore.create(location, settings)
        return cls(store, recognizer, search)

    @classmethod
    def open(
        cls, location: Path | str, recognizer: GalleryModel, search: str = "exact", nprobe: int = 16
    ) -> Gallery:
        """An existing gallery, with the model it was created with.

        Raises:
            ConfigError: no gallery there, a newer schema, or another model's gallery.
        """
        return cls(GalleryStore.open(location), recognizer, search, nprobe)

    @classmethod
    def open_with_its_model(
        cls,
        location: Path | str,
        model: Path | str | None = None,
        search: str = "exact",
        device: str | None = None,
    ) -> Gallery:
        """An existing gallery with the model it was created with (read from its settings),
        or with `model` when given: a run or model folder, or an ONNX export folder of the same
        run (`load_recognizer`), on `device` (None: auto).

        Raises:
            ConfigError: no gallery there, or another model's gallery. CheckpointError: the
                model folder is missing or damaged.
        """
        if model is None:
            store = GalleryStore.open(location)
            try:
                model = Path(store.setting("model_path"))
            finally:
                store.close()
        return cls.open(location, load_recognizer(model, device), search=search)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def threshold(self) -> float:
        return float(self.settings["threshold"])

    @property
    def far(self) -> float | None:
        return self.settings["far"]

    # ------------------------------------------------------------------------------------
    # Writing

    def enroll(
        self,
        identity: str,
        images: ImageInput | Sequence[ImageInput],
        metadata: dict[str, Any] | None = None,
        force: bool = False,
        sources: list[str] | None = None,
    ) -> Enrollment:
        """Add examples of `identity` (created if new), all or nothing.

        Every image is decoded and embedded before anything is written; then one transaction
        stores them. An image this identity already has is skipped and reported; an image
        another identity has is refused unless `force`.

        Args:
            sources: how to name each image (default: its path, or "image N").
        Raises:
            DataError: an image is unreadable (named), or already enrolled under another
                identity (without `force`); nothing of the call is stored.
            ConfigError: an empty identity name.
        """
        given = as_image_list(images)
        # every image readable, or nothing happens; photos without a face are left out
        # (and listed) when the model's face step says so
        prepared = self.recognizer.prepare_faces(given)
        z = self.recognizer.embed_prepared(prepared.x)
        return self.enroll_prepared(identity, given, prepared, z, metadata, force, sources)

    def enroll_prepared(
        self,
        identity: str,
        given: list[ImageInput],
        prepared: PreparedInputs,
        embeddings: torch.Tensor | np.ndarray,
        metadata: dict[str, Any] | None = None,
        force: bool = False,
        sources: list[str] | None = None,
    ) -> Enrollment:
        """`enroll` for images already prepared (`Recognizer.prepare_faces(given)`) and
        embedded ((K, D), one row per kept image): what a service does outside its lock."""
        name = _checked_name(identity)
        if sources is not None and len(sources) != len(given):
            raise ConfigError(f"{len(sources)} sources for {len(given)} images")

        names_given = sources

        def name_of(item: ImageInput, k: int) -> str:
            return names_given[k] if names_given is not None else describe(item, k)

        no_face = [name_of(given[k], k) for k in prepared.no_face]
        if not prepared.kept:
            raise NoFaceError(
                f"no face found in any of the {len(given)} image(s) given for {name!r} "
                f"({', '.join(no_face[:5])}): nothing enrolled"
            )
        items = [given[k] for k in prepared.kept]
        x = _as_numpy(prepared.x)
        z = _as_numpy(embeddings)
        sources = [name_of(given[k], k) for k in prepared.kept]
        digests = [_sha256(item, x[k]) for k, item in enumerate(items)]
        stored_images = (
            [_stored_image(item, x[k]) for k, item in enumerate(items)]
            if self.settings["keep_images"]
            else [None] * len(items)
        )
        # the same image twice in one call: keep its first occurrence
        firsts = {d: k for k, d in reversed(list(enumerate(digests)))}
        with self.store.transaction() as conn:
            owners = self.store.owners_of(conn, sorted(set(digests)))
            others = {
                d: [o for o in names if o != name] for d, names in owners.items() if d in firsts
            }
            clashes = {d: o for d, o in others.items() if o}
            if clashes and not force:
                lines = [
                    f"{sources[firsts[d]]} (enrolled as {', '.join(o)})" for d, o in clashes.items()
                ]
                raise ConflictError(
                    f"already enrolled under another identity, so not enrolled as {name!r}: "
                    + "; ".join(lines)
                    + ". If the same image really shows both, enroll with force=True (--force)"
                )
            identity_id = self.store.identity_id(conn, name)
            created = identity_id is None
            if identity_id is None:
                identity_id = self.store.add_identity(conn, name, metadata)
            elif metadata is not None:
                conn.execute(
                    identities_table.update()
                    .where(identities_table.c.id == identity_id)
                    .values(metadata=json.dumps(metadata, sort_keys=True))
                )
            mine = {d for d, names in owners.items() if name in names}
            new = [k for d, k in firsts.items() if d not in mine]
            new.sort()
            chosen = set(new)
            repeated = [sources[k] for k in range(len(items)) if k not in chosen]
            rows = [
                {
                    "identity_id": identity_id,
                    "embedding": embedding_blob(z[k]),
                    "sha256": digests[k],
                    "source": sources[k],
                    "added_at": now(),
                    "metadata": None,
                    "image": stored_images[k],
                }
                for k in new
            ]
            example_ids = self.store.add_examples(conn, rows)
            generation = self.store.bump(conn) if rows or created else None
        if generation is not None:
            self.names[identity_id] = name
            self._after_write(
                generation,
                lambda: self.search.add(
                    z[new], np.asarray(example_ids, np.int64), np.full(len(new), identity_id)
                ),
            )
        return Enrollment(name, created, [sources[k] for k in new], repeated, no_face)

    def remove(self, identity: str) -> int:
        """Delete an identity and its examples; returns how many examples went.

        Raises:
            DataError: no such identity.
        """
        with self.store.transaction() as conn:
            identity_id = self._existing(conn, identity)
            count = conn.execute(
                sa.select(sa.func.count())
                .select_from(examples_table)
                .where(examples_table.c.identity_id == identity_id)
            ).scalar_one()
            conn.execute(identities_table.delete().where(identities_table.c.id == identity_id))
            generation = self.store.bump(conn)
        self.names.pop(identity_id, None)
        self._after_write(generation, lambda: self.search.remove_identities([identity_id]))
        return int(count)

    def remove_example(self, identity: str, example_id: int) -> None:
        """Delete one example of an identity (the identity stays, even with none left).

        Raises:
            NotFoundError: no such identity, or no such example of it.
        """
        with self.store.transaction() as conn:
            identity_id = self._existing(conn, identity)
            deleted = conn.execute(
                examples_table.delete().where(
                    (examples_table.c.id == int(example_id))
                    & (examples_table.c.identity_id == identity_id)
                )
            ).rowcount
            if not deleted:
                raise NotFoundError(f"identity {identity!r} has no example {example_id}")
            generation = self.store.bump(conn)
        self._after_write(generation, None)  # the search is rebuilt on the next read

    def example_image(self, identity: str, example_id: int) -> bytes:
        """The stored image of one example (a gallery created with keep_images).

        Raises:
            NotFoundError: no such identity or example, or the gallery keeps no images.
        """
        with self.store.engine.connect() as conn:
            identity_id = self._existing(conn, identity)
            blob = conn.execute(
                sa.select(examples_table.c.image).where(
                    (examples_table.c.id == int(example_id))
                    & (examples_table.c.identity_id == identity_id)
                )
            ).scalar_one_or_none()
        if blob is None:
            raise NotFoundError(
                f"no stored image of example {example_id} of {identity!r} (the gallery keeps "
                "images only when created with --keep-images)"
            )
        return bytes(blob)

    def set_metadata(self, identity: str, metadata: dict[str, Any] | None) -> None:
        """Replace an identity's metadata (None clears it).

        Raises:
            NotFoundError: no such identity.
        """
        with self.store.transaction() as conn:
            identity_id = self._existing(conn, identity)
            conn.execute(
                identities_table.update()
                .where(identities_table.c.id == identity_id)
                .values(metadata=None if metadata is None else json.dumps(metadata, sort_keys=True))
            )

    def rename(self, identity: str, new_name: str) -> bool:
        """Rename an identity; when `new_name` exists, merge into it (its examples join that
        identity, an image both had is kept once). Returns True when it merged.

        Raises:
            DataError: no such identity.
        """
        new_name = _checked_name(new_name)
        with self.store.transaction() as conn:
            old_id = self._existing(conn, identity)
            target = self.store.identity_id(conn, new_name)
            if target == old_id:
                return False
            if target is None:
                conn.execute(
                    identities_table.update()
                    .where(identities_table.c.id == old_id)
                    .values(name=new_name)
                )
            else:
                theirs = sa.select(examples_table.c.sha256).where(
                    examples_table.c.identity_id == target
                )
                conn.execute(
                    examples_table.delete().where(
                        (examples_table.c.identity_id == old_id)
                        & examples_table.c.sha256.in_(theirs)
                    )
                )
                conn.execute(
                    examples_table.update()
                    .where(examples_table.c.identity_id == old_id)
                    .values(identity_id=target)
                )
                conn.execute(identities_table.delete().where(identities_table.c.id == old_id))
            generation = self.store.bump(conn)
        if target is None:
            self.names[old_id] = new_name
            self._after_write(generation, lambda: None)
        else:
            self.names.pop(old_id, None)
            self._after_write(generation, None)  # duplicates dropped: read it again
        return target is not None

    # ------------------------------------------------------------------------------------
    # Reading

    def identify(
        self, images: ImageInput | Sequence[ImageInput], k: int = 5, every_face: bool = False
    ) -> list[Identification]:
        """Each image's k best identities, and the decision: the best one when within the
        threshold, else unknown.

        Args:
            every_face: with a face model, one answer per face found in each photo (with its
                box; a photo without any gets one "no face" answer) instead of its main face.
        Raises:
            DataError: an image is unreadable (named).
            ConfigError: every_face with a model that declares no face step.
        """
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        given = as_image_list(images)
        if every_face:
            return self._identify_every_face(given, k)
        prepared = self.recognizer.prepare_faces(given)
        z = self.recognizer.embed_prepared(prepared.x)
        found = self.identify_embeddings(
            z, [describe(given[index], index) for index in prepared.kept], k
        )
        out = [
            Identification(
                describe(item, i), None, float("inf"), [], self.threshold, self.far, no_face=True
            )
            for i, item in enumerate(given)
        ]
        for answer, index in zip(found, prepared.kept, strict=True):
            out[index] = answer
        return out

    def identify_embeddings(
        self, z: torch.Tensor | np.ndarray, sources: list[str], k: int = 5
    ) -> list[Identification]:
        """`identify` for embeddings already computed with this gallery's model.

        Args:
            z: (N, D) float32 embeddings; sources: how each answer names its probe.
        """
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        self._fresh()
        top = self.search.top(torch.as_tensor(z), k)
        out = []
        for row, source in enumerate(sources):
            accepted, best, candidates = self._decision(top, row)
            out.append(Identification(source, accepted, best, candidates, self.threshold, self.far))
        return out

    def _decision(self, top: Any, row: int) -> tuple[str | None, float, list[Candidate]]:
        """(the accepted identity or None, the best distance, the candidates) of one probe
        row of a search result."""
        candidates = [
            Candidate(self.names[int(i)], float(d))
            for d, i in zip(top.distances[row], top.identity_ids[row], strict=True)
            if int(i) >= 0
        ]
        best = candidates[0].distance if candidates else float("inf")
        accepted = candidates[0].identity if candidates and accepts(best, self.threshold) else None
        return accepted, best, candidates

    def _identify_every_face(self, given: list[ImageInput], k: int) -> list[Identification]:
        faces = self.recognizer.every_face(given)
        z = self.recognizer.embed_prepared(faces.x)
        self._fresh()
        top = self.search.top(torch.as_tensor(z), k)
        answers: dict[int, list[Identification]] = {i: [] for i in range(len(given))}
        for row, (index, box) in enumerate(zip(faces.image, faces.boxes, strict=True)):
            accepted, best, candidates = self._decision(top, row)
            answers[index].append(
                Identification(
                    describe(given[index], index), accepted, best, candidates, self.threshold,
                    self.far, box=box,
                )
            )  # fmt: skip
        out: list[Identification] = []
        for index, item in enumerate(given):
            out += answers[index] or [
                Identification(
                    describe(item, index), None, float("inf"), [], self.threshold, self.far,
                    no_face=True,
                )
            ]  # fmt: skip
        return out

    def verify(self, identity: str, image: ImageInput) -> Verification:
        """Whether `image` shows `identity` (its score against that identity alone).

        Raises:
            DataError: no such identity, or an unreadable image.
        """
        z = self.recognizer.embed(image)
        if z.shape[0] != 1:
            raise DataError("verify takes one image; use identify for several")
        return self.verify_embedding(identity, z, describe(as_image_list(image)[0], 0))

    def verify_embedding(
        self, identity: str, z: torch.Tensor | np.ndarray, source: str
    ) -> Verification:
        """`verify` for an embedding (1, D) already computed with this gallery's model."""
        embeddings, owner_name = self._examples_matrix(identity)
        z = torch.as_tensor(z)
        stored = torch.from_numpy(embeddings)
        if self.settings["scoring"] == "centroid":
            distance = float(self.recognizer.dissimilarity(z, stored.mean(dim=0, keepdim=True))[0])
        else:
            distance = float(self.recognizer.dissimilarity(z.expand_as(stored), stored).min())
        same = accepts(distance, self.threshold)
        return Verification(owner_name, source, distance, same, self.threshold, self.far)

    def identities(self) -> list[IdentityInfo]:
        """Every identity, by name, with its number of examples."""
        return [IdentityInfo(*row) for row in self.store.identity_names()]

    def has_identity(self, name: str) -> bool:
        with self.store.engine.connect() as conn:
            return self.store.identity_id(conn, name) is not None

    def identity(self, name: str) -> IdentityInfo:
        """One identity with its number of examples.

        Raises:
            NotFoundError: no such identity.
        """
        for info in self.identities():
            if info.name == name:
                return info
        raise NotFoundError(self._no_such(name))

    def examples(self, identity: str) -> list[ExampleRow]:
        """The stored examples of an identity (without embeddings).

        Raises:
            DataError: no such identity.
        """
        rows = self.store.examples_of(identity)
        if not rows and identity not in {i.name for i in self.identities()}:
            raise NotFoundError(self._no_such(identity))
        return rows

    def stats(self) -> dict[str, Any]:
        """Counts and settings: identities, examples, model, threshold, FAR, scoring."""
        identities, examples = self.store.counts()
        s = self.store.settings()
        return {
            "location": self.store.location,
            "identities": identities,
            "examples": examples,
            "model_path": s["model_path"],
            "model_fingerprint": s["model_fingerprint"],
            "metric": s["metric"],
            "scoring": s["scoring"],
            "threshold": s["threshold"],
            "far": s["far"],
            "calibrated_on": s["calibrated_on"],
            "keep_images": s["keep_images"],
            "schema_version": s["schema_version"],
            "search": self.search_kind,
            "created_at": s["created_at"],
        }

    # ------------------------------------------------------------------------------------
    # Moving to another model

    def reembed(self, recognizer: GalleryModel, far: float | None = None) -> int:
        """Embed every stored image with another model and bind the gallery to it (with its
        threshold at `far`, default the gallery's rate when that model supports it), in one
        transaction. Returns the number of examples re-embedded.

        Raises:
            ConfigError: the gallery did not keep its images, or the model has no threshold
                at the rate.
        """
        if not self.settings["keep_images"]:
            raise ConfigError(
                f"{self.store.location} did not keep its images (create it with "
                "keep_images=True / --keep-images), so it cannot be re-embedded: enroll the "
                "people again into a new gallery of the new model"
            )
        if recognizer.head is not None:
            raise ConfigError("a pair-classifier model cannot serve a gallery")
        threshold, rate = recognizer.threshold(far if far is not None else self.far)
        rows = self.store.stored_images()
        missing = [example_id for example_id, blob, _ in rows if blob is None]
        if missing:
            raise ConfigError(
                f"{self.store.location}: {len(missing)} examples have no stored image "
                f"(e.g. example {missing[0]}), so the gallery cannot be re-embedded"
            )
        # Through files, so that stored images are decoded exactly as enrolled files were.
        with tempfile.TemporaryDirectory(prefix="siamese-reembed-") as folder:
            paths = []
            for example_id, blob, _ in rows:
                path = Path(folder) / f"{example_id}"
                path.write_bytes(blob)
                paths.append(path)
            z = _as_numpy(recognizer.embed(paths)) if paths else np.empty((0, 0), np.float32)
        t = recognizer.thresholds
        with self.store.transaction() as conn:
            for (example_id, _, _), vector in zip(rows, z, strict=True):
                conn.execute(
                    examples_table.update()
                    .where(examples_table.c.id == example_id)
                    .values(embedding=embedding_blob(vector))
                )
            self.store.set_settings(
                conn,
                {
                    "model_fingerprint": recognizer.fingerprint,
                    "model_path": str(recognizer.model_dir),
                    "embedding_dim": recognizer.embedding_dim,
                    "metric": recognizer.metric,
                    "far": rate,
                    "threshold": threshold,
                    "calibrated_on": t.calibrated_on if t else "",
                },
            )
            self.store.bump(conn)
        self.recognizer = recognizer
        self.settings = self.store.settings()
        self.search = make_search(
            self.search_kind,
            self.settings["metric"],
            self.settings["scoring"],
            recognizer.embedding_dim,
        )
        self.search_generation = -1
        return len(rows)

    # ------------------------------------------------------------------------------------
    # The search cache

    def _fresh(self) -> None:
        """Rebuild the search from the database when another process has written."""
        if self.store.generation() == self.search_generation:
            return
        vectors, ids, owners, names, generation = self.store.all_embeddings(
            self.recognizer.embedding_dim
        )
        self.names = names
        self.search.reset(vectors, ids, owners)
        self.search_generation = generation

    def _after_write(self, generation: int, update: Any) -> None:
        """After this process's write at `generation`: apply `update` to the cached search
        when the cache was current just before it, else leave it stale for `_fresh`."""
        if update is not None and self.search_generation == generation - 1:
            update()
            self.search_generation = generation
        else:
            self.search_generation = -1

    def _existing(self, conn: sa.Connection, identity: str) -> int:
        identity_id = self.store.identity_id(conn, identity)
        if identity_id is None:
            raise NotFoundError(self._no_such(identity))
        return identity_id

    def _no_such(self, identity: str) -> str:
        names = [i.name for i in self.identities()]
        near = [n for n in names if n.lower() == identity.lower()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return (
            f"no identity {identity!r} in {self.store.location}{hint}; `siamese gallery list` "
            "shows the enrolled ones"
        )

    def _examples_matrix(self, identity: str) -> tuple[np.ndarray, str]:
        with self.store.engine.connect() as conn:
            identity_id = self._existing(conn, identity)
            blobs = (
                conn.execute(
                    sa.select(examples_table.c.embedding).where(
                        examples_table.c.identity_id == identity_id
                    )
                )
                .scalars()
                .all()
            )
        if not blobs:
            raise DataError(f"identity {identity!r} has no examples to verify against")
        dim = self.recognizer.embedding_dim
        return np.stack([np.frombuffer(b, dtype="<f4").reshape(dim) for b in blobs]), identity


def _checked_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"an identity needs a non-empty name, got {name!r}")
    return name.strip()


def _as_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """A numpy array of a tensor (in host memory) or of an array (as is)."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _sha256(item: ImageInput, pixels: np.ndarray) -> str:
    """A file's SHA-256 (its bytes), or for an image in memory that of its model input."""
    if isinstance(item, bytes):
        return hashlib.sha256(item).hexdigest()
    if isinstance(item, (str, Path)):
        digest = hashlib.sha256()
        with open(item, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    shape = ",".join(str(v) for v in pixels.shape).encode()
    return hashlib.sha256(shape + b":" + np.ascontiguousarray(pixels).tobytes()).hexdigest()


def _stored_image(item: ImageInput, pixels: np.ndarray) -> bytes:
    """What `keep_images` stores: a file's bytes, or a PNG of an in-memory image's pixels."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, (str, Path)):
        return Path(item).read_bytes()
    array = np.asarray(pixels)
    image = Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _finite(value: float) -> float | None:
    return value if value != float("inf") else None
