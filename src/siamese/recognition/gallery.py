"""A persistent gallery: enroll identities from one or more images, identify new images with
strangers answered "unknown", verify a claimed identity.

    from siamese.recognition import Gallery, load_recognizer

    gallery = Gallery.create("staff.sqlite", load_recognizer("runs/faces"))  # FPIR 1 %
    gallery.enroll("ada", ["ada.jpg"])
    [answer] = gallery.identify("visitor.jpg")
    answer.identity            # "ada", or None when the best match is beyond the threshold

Recognition is one pipeline: the model prepares the images (`RecognitionModel.prepare_images`:
decoding, the face step), embeds them (`embed_images`), and the gallery decides. Each gallery
method takes images (and runs the first two steps itself) or `EmbeddedImages` already made (a
service prepares in its thread pool and embeds in its micro-batcher, outside the gallery's
lock).

The database (`gallery_store`, which holds all of the gallery's SQL) is the source of truth:
the gallery is bound to one model (its weights' fingerprint), one scoring (nearest example, or
centroid, per identity) and one decision rule: by default a target false-positive
identification rate (the share of strangers accepted, `--fpir`, 1 %), whose threshold is
re-derived for the gallery's size inside every write and stored with the write counter
(`siamese.recognition.decisions.identification_basis`); or a pair false-accept rate (`--far`).
The gallery also measures itself on its own people (`calibrate`, and automatically as it
grows). Every answer carries the threshold, what it stands for and what it rests on. The
search (`gallery_search_cache`: exact, or an index tuned to agree with it) is a cache of the
database, persisted beside it and brought in step when another process has written.
"""

from __future__ import annotations

import hashlib
import io
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from sqlalchemy.engine import Connection

from siamese.errors import ConfigError, DataError, NoFaceError, NotFoundError
from siamese.recognition.answers import (
    Candidate,
    DecisionBasis,
    Enrollment,
    Identification,
    IdentityInfo,
    Verification,
    _ReadsDecision,
)
from siamese.recognition.decisions import accepts, identification_basis
from siamese.recognition.fpir import DEFAULT_FPIR, GalleryCalibration
from siamese.recognition.gallery_calibration import measure_gallery
from siamese.recognition.gallery_search import check_choices
from siamese.recognition.gallery_search_cache import SearchCache
from siamese.recognition.gallery_store import ExampleRow, GalleryStore, NewExample, now
from siamese.recognition.model_inputs import EmbeddedImages, ImageInput
from siamese.recognition.recognition_model import RecognitionModel
from siamese.recognition.recognizer_loading import load_recognizer
from siamese.recognition.score_normalisation import COHORT, normalised_best

SELF_CALIBRATION_STEP = 0.1
"""The gallery measures itself again (automatically) once its number of identities has moved
by this share since it last did."""
DEFAULT_NORMALISATION = "none"
"""How a new gallery scores. Chosen on the models' validation classes (BENCHMARKS, "what chose
the default scoring"): there the cohort ratio ties with distances (within ±4 points of
identification at FPIR 1 % and 10 %, either way) and T-norm loses, so the simpler stays. The
ratio's gains — thresholds that carry across photo domains — show on evaluation data only,
which may not choose a default; it is one option away (`normalisation="ratio"`)."""
MIN_SELF_CALIBRATION = 10
"""Identities from which the gallery measures itself automatically."""

AMBIGUOUS_MARGIN = 0.1
"""An accepted answer is flagged ambiguous when the runner-up's distance is within this share of
the distance threshold of the best: two enrolled identities fit about equally."""

Images = ImageInput | Sequence[ImageInput] | EmbeddedImages


class Gallery(_ReadsDecision):
    """Enrolled identities in a database, searched with one model.

    Use `Gallery.create` or `Gallery.open`; `close` (or a `with` block) releases the database.
    """

    def __init__(
        self,
        store: GalleryStore,
        recognizer: RecognitionModel,
        search: str = "exact",
        target: float | None = None,
        persist: bool = True,
    ) -> None:
        self.store = store
        self.recognizer = recognizer
        settings = store.settings()
        check_choices(settings["scoring"], search)
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
        self.cache = SearchCache(store, search, recognizer.embedding_dim, target, persist)
        self.decision = self._stored_decision(settings)
        self._own_cache: GalleryCalibration | None = None
        self._identities: int | None = None
        store.after_write = self._rederive

    # ------------------------------------------------------------------------------------
    # Creating and opening

    @classmethod
    def create(
        cls,
        location: Path | str,
        recognizer: RecognitionModel,
        fpir: float | None = None,
        far: float | None = None,
        scoring: str = "nearest",
        keep_images: bool = False,
        search: str = "auto",
        normalisation: str = DEFAULT_NORMALISATION,
        persist: bool = True,
    ) -> Gallery:
        """A new gallery bound to `recognizer`'s model (a `Recognizer` or an `OnnxRecognizer`).

        Args:
            location: an SQLite file path (created) or a database URL.
            fpir: the share of strangers the gallery may accept, whatever its size (default
                0.01 when `far` is not given either).
            far: instead, a fixed pair false-accept rate the model's calibration supports (for
                experts: the share of strangers accepted then grows with the gallery).
            scoring: "nearest" (an identity scores its closest example) or "centroid".
            keep_images: store each enrolled image (PNG of the model's input, or the file's
                bytes), so that `reembed` can move the gallery to another model.
            search: "auto" (by size), "exact", "ivf", "hnsw" or "ivfpq" (`gallery_search`).
            persist: keep the search's snapshot beside the database (see `open`).
            normalisation: "ratio" or "t-norm" (decide on the best distance normalised
                against the probe's nearest other identities, `score_normalisation`), or
                "none" (on distances).
        Raises:
            ConfigError: a gallery is already there; both rules given; the model has no
                calibration that supports the rule.
        """
        check_choices(scoring, search)  # before anything is written
        if fpir is not None and far is not None:
            raise ConfigError("give --fpir or --far, not both")
        rule, target = ("far", far) if far is not None else ("fpir", fpir or DEFAULT_FPIR)
        thresholds = recognizer.thresholds
        if thresholds is None:
            raise ConfigError(recognizer.no_thresholds_message())
        # the rule for the empty gallery, checked before anything is written
        decision = identification_basis(
            rule, target, 0, 0, scoring, thresholds, None, 0, normalisation
        )
        settings = {
            "model_fingerprint": recognizer.fingerprint,
            "model_path": str(recognizer.model_dir),
            "embedding_dim": recognizer.embedding_dim,
            "metric": recognizer.metric,
            "scoring": scoring,
            "normalisation": normalisation,
            "rule": rule,
            "target": target,
            "decision": decision.as_dict(),
            "self_calibration": None,
            "far": decision.far,
            "threshold": decision.threshold,
            "calibrated_on": thresholds.calibrated_on,
            "keep_images": bool(keep_images),
            "created_at": now(),
        }
        store = GalleryStore.create(location, settings)
        return cls(store, recognizer, search, persist=persist)

    @classmethod
    def open(
        cls,
        location: Path | str,
        recognizer: RecognitionModel,
        search: str = "auto",
        target: float | None = None,
        persist: bool = True,
    ) -> Gallery:
        """An existing gallery, with the model it was created with.

        Args:
            search: "auto" (by size), "exact", "ivf", "hnsw" or "ivfpq" (`gallery_search`).
            target: the share of probes on which an approximate index must find the nearest
                identity the exact search finds (default 0.999); its parameters are tuned
                to it when it is built.
            persist: keep the search's snapshot beside the database (a folder
                `<gallery>.index/`, or the user's cache for a server database) so that the
                next start neither reads every embedding nor rebuilds the index.
        Raises:
            ConfigError: no gallery there, a newer schema, or another model's gallery.
        """
        return cls(GalleryStore.open(location), recognizer, search, target, persist)

    @classmethod
    def open_with_its_model(
        cls,
        location: Path | str,
        model: Path | str | None = None,
        search: str = "auto",
        device: str | None = None,
    ) -> Gallery:
        """An existing gallery with the model it was created with (read from its settings),
        or with `model` when given: a run or model folder, or an ONNX export folder of the same
        run (`load_recognizer`), on `device` (None: auto).

        Raises:
            ConfigError: no gallery there, or another model's gallery. CheckpointError: the
                model folder is missing or damaged.
        """
        model = cls.its_model(location) if model is None else model
        return cls.open(location, load_recognizer(model, device), search=search)

    @staticmethod
    def its_model(location: Path | str) -> Path:
        """The model folder the gallery at `location` was created with.

        Raises:
            ConfigError: no gallery there, or a newer schema.
        """
        store = GalleryStore.open(location)
        try:
            return Path(store.setting("model_path"))
        finally:
            store.close()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------
    # The decision rule (`threshold` and `far`: of the current `decision`)

    @property
    def normalisation(self) -> str:
        """ "t-norm" or "none" (a gallery made before normalised scores: "none")."""
        return str(self.settings.get("normalisation", "none"))

    @property
    def rule(self) -> tuple[str, float]:
        """("fpir" or "far", the target rate)."""
        s = self.settings
        if "rule" not in s:  # a gallery made before FPIR rules: its pair rate, as made
            return "far", float(s["far"])
        return str(s["rule"]), float(s["target"])

    def set_rule(self, fpir: float | None = None, far: float | None = None) -> DecisionBasis:
        """Change the decision rule (one of the two rates); the threshold follows at once.

        Raises:
            ConfigError: both or neither given, or a rate the calibration cannot support.
        """
        if (fpir is None) == (far is None):
            raise ConfigError("give one of fpir or far")
        rule, target = ("fpir", fpir) if fpir is not None else ("far", far)
        assert target is not None
        identities, examples = self.store.counts()
        identification_basis(  # refused before anything is written
            rule, target, identities, examples, self.settings["scoring"], self._thresholds(),
            self._own(), 0, self.normalisation,
        )  # fmt: skip
        with self.store.transaction() as conn:
            self.store.set_settings(conn, {"rule": rule, "target": target})
            self.settings = {**self.settings, "rule": rule, "target": target}
            self.store.bump(conn)
        self.cache.invalidate()
        return self.decision

    def calibrate(self) -> GalleryCalibration:
        """Measure the gallery on its own people now (each identity left out as a stranger
        to the rest; genuine probes from identities with two or more images), store it, and
        re-derive the threshold from it.

        Raises:
            ConfigError: fewer than two identities.
        """
        vectors, _, owners, _, generation = self.store.all_embeddings(self.recognizer.embedding_dim)
        if np.unique(owners).size < 2:
            raise ConfigError(
                f"{self.store.location}: a gallery calibrates on its own identities, each "
                "left out as a stranger to the others: enroll at least two first"
            )
        own = measure_gallery(
            vectors, owners, self.settings["metric"], self.settings["scoring"], generation
        )
        stored = own.as_dict()
        self._own_cache = own
        with self.store.transaction() as conn:
            self.store.set_settings(
                conn, {"self_calibration": stored, "self_calibration_generation": generation}
            )
            self.settings = {**self.settings, "self_calibration": stored}
            self.store.bump(conn)
        self.cache.invalidate()
        return own

    def _thresholds(self) -> Any:
        thresholds = self.recognizer.thresholds
        if thresholds is None:
            raise ConfigError(self.recognizer.no_thresholds_message())
        return thresholds

    def _own(self) -> GalleryCalibration | None:
        return self._calibration(self.settings.get("self_calibration"))

    def _calibration(self, stored: dict[str, Any] | None) -> GalleryCalibration | None:
        """The stored self-calibration, parsed once per measurement (it holds up to 2,000 ×
        64 scores: parsing it on every write would cost more than the write)."""
        if stored is None:
            return None
        cached = self._own_cache
        if cached is None or cached.generation != int(stored["generation"]):
            cached = self._own_cache = GalleryCalibration.from_dict(stored)
        return cached

    def _stored_decision(self, settings: dict[str, Any]) -> DecisionBasis:
        stored = settings.get("decision")
        if stored is not None:
            return DecisionBasis(**stored)
        # a gallery made before FPIR rules: its fixed pair threshold, as made
        generation = int(settings.get("generation", 0))
        return DecisionBasis(
            float(settings["threshold"]), "far", settings["far"], None, settings["far"],
            f"the model's pair threshold at FAR {settings['far']} (a gallery made before "
            "FPIR rules)", generation,
        )  # fmt: skip

    def _rederive(self, conn: Connection, generation: int) -> None:
        """`GalleryStore.after_write`: the threshold for the gallery as this write leaves it,
        stored in the same transaction. The rule and the self-calibration are read in the
        transaction, so a rule another process set since this one last read is the one used."""
        read = self.store.setting_in
        rule = read(conn, "rule")
        if rule is None:
            return  # a gallery made before FPIR rules keeps its fixed threshold
        target = float(read(conn, "target"))
        normalisation = read(conn, "normalisation") or "none"
        self.settings = {
            **self.settings, "rule": rule, "target": target, "normalisation": normalisation
        }  # fmt: skip
        identities, examples = self.store.counts(conn)
        self._identities = identities
        at = read(conn, "self_calibration_generation")
        cached = self._own_cache
        if at is not None and cached is not None and cached.generation == int(at):
            own: GalleryCalibration | None = cached
        else:
            own = self._calibration(read(conn, "self_calibration"))
        decision = identification_basis(
            rule, target, identities, examples, self.settings["scoring"], self._thresholds(),
            own, generation, normalisation,
        )  # fmt: skip
        self.store.set_settings(
            conn,
            {"decision": decision.as_dict(), "threshold": decision.threshold, "far": decision.far},
        )
        self.decision = decision

    def _maybe_calibrate(self) -> None:
        """Measure the gallery on its own people again once it has grown (or shrunk) by
        `SELF_CALIBRATION_STEP` since it last did (from `MIN_SELF_CALIBRATION` identities)."""
        if "rule" not in self.settings:
            return
        # the count the write's own re-derivation took (no second query)
        identities = self._identities if self._identities is not None else self.store.counts()[0]
        own = self._own()
        if identities < MIN_SELF_CALIBRATION:
            return
        if own is not None and abs(identities - own.identities) < max(
            1.0, SELF_CALIBRATION_STEP * own.identities
        ):
            return
        self.calibrate()

    # ------------------------------------------------------------------------------------
    # Writing

    def read(
        self, images: Images, every_face: bool = False, sources: Sequence[str] | None = None
    ) -> EmbeddedImages:
        """The images prepared and embedded by the gallery's model (as given when already)."""
        if isinstance(images, EmbeddedImages):
            return images
        return self.recognizer.read(images, every_face, sources)

    def enroll(
        self,
        identity: str,
        images: Images,
        metadata: dict[str, Any] | None = None,
        force: bool = False,
        sources: list[str] | None = None,
    ) -> Enrollment:
        """Add examples of `identity` (created if new), all or nothing.

        Every image is decoded and embedded before anything is written; then one transaction
        stores them (and the threshold for the gallery's new size). An image this identity
        already has is skipped and reported; an image another identity has is refused unless
        `force`. Photos in which the model's face step finds no face are left out and listed.

        Args:
            images: images, or `EmbeddedImages` from the gallery's model.
            sources: how to name each image (default: its path, or "image N").
        Raises:
            DataError: an image is unreadable (named). ConflictError: already enrolled under
                another identity (without `force`); nothing of the call is stored.
            NoFaceError: no face in any of them. ConfigError: an empty identity name.
        """
        name = _checked_name(identity)
        read = self.read(images, sources=sources)
        prepared = read.prepared
        no_face = [prepared.sources[i] for i in prepared.no_face]
        if not prepared.image:
            raise NoFaceError(
                f"no face found in any of the {len(prepared.given)} image(s) given for {name!r} "
                f"({', '.join(no_face[:5])}): nothing enrolled"
            )
        keep_images = bool(self.settings["keep_images"])
        examples = []
        for row, index in enumerate(prepared.image):
            item, pixels = prepared.given[index], prepared.x[row]
            examples.append(
                NewExample(
                    read.z[row],
                    _sha256(item, pixels),
                    prepared.sources[index],
                    _stored_image(item, pixels) if keep_images else None,
                )
            )
        done = self.store.enroll(name, metadata, examples, force)
        if done.generation is not None:
            self.names[done.identity_id] = name
            rows = np.asarray(done.stored, dtype=np.int64)
            self._after_write(
                done.generation,
                lambda: self.search.add(
                    read.z[rows],
                    np.asarray(done.example_ids, np.int64),
                    np.full(rows.size, done.identity_id),
                ),
            )
            self._maybe_calibrate()
        return Enrollment(
            name,
            done.created,
            [examples[k].source for k in done.stored],
            [examples[k].source for k in done.repeated],
            no_face,
            self.decision,
        )

    def remove(self, identity: str) -> int:
        """Delete an identity and its examples; returns how many examples went.

        Raises:
            NotFoundError: no such identity.
        """
        identity_id, count, generation = self.store.remove_identity(identity)
        self.names.pop(identity_id, None)
        self._after_write(generation, lambda: self.search.remove_identities([identity_id]))
        self._maybe_calibrate()
        return count

    def remove_example(self, identity: str, example_id: int) -> None:
        """Delete one example of an identity (the identity stays, even with none left).

        Raises:
            NotFoundError: no such identity, or no such example of it.
        """
        generation = self.store.remove_example(identity, example_id)
        self._after_write(generation, None)  # the search is rebuilt on the next read

    def example_image(self, identity: str, example_id: int) -> bytes:
        """The stored image of one example (a gallery created with keep_images).

        Raises:
            NotFoundError: no such identity or example, or the gallery keeps no images.
        """
        return self.store.example_image(identity, example_id)

    def set_metadata(self, identity: str, metadata: dict[str, Any] | None) -> None:
        """Replace an identity's metadata (None clears it).

        Raises:
            NotFoundError: no such identity.
        """
        self.store.set_metadata(identity, metadata)

    def rename(self, identity: str, new_name: str) -> bool:
        """Rename an identity; when `new_name` exists, merge into it (its examples join that
        identity, an image both had is kept once). Returns True when it merged.

        Raises:
            NotFoundError: no such identity.
        """
        done = self.store.rename(identity, _checked_name(new_name))
        if done is None:
            return False
        old_id, target, generation = done
        if target is None:
            self.names[old_id] = _checked_name(new_name)
            self._after_write(generation, lambda: None)
        else:
            self.names.pop(old_id, None)
            self._after_write(generation, None)  # duplicates dropped: read it again
        return target is not None

    # ------------------------------------------------------------------------------------
    # Reading

    def identify(
        self, images: Images, k: int = 5, every_face: bool = False
    ) -> list[Identification]:
        """Each image's k best identities, and the decision: the best one when within the
        threshold, else unknown; with the threshold, what it stands for, and the margin to
        the runner-up.

        Args:
            images: images, or `EmbeddedImages` from the gallery's model.
            every_face: with a face model, one answer per face found in each photo (with its
                box; a photo without any gets one "no face" answer) instead of its main face.
        Raises:
            DataError: an image is unreadable (named).
            ConfigError: every_face with a model that declares no face step; k < 1.
        """
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        read = self.read(images, every_face=every_face)
        prepared = read.prepared
        self._fresh()
        decision = self.decision
        top = self.search.top(torch.as_tensor(read.z), max(k, 2, COHORT + 1))
        scores = (
            normalised_best(top.distances[:, : COHORT + 1].numpy(), self.normalisation)
            if decision.normalised_threshold is not None
            else None
        )
        answers: dict[int, list[Identification]] = {i: [] for i in range(len(prepared.given))}
        for row, index in enumerate(prepared.image):
            box = prepared.boxes[row] if prepared.boxes is not None else None
            score = None if scores is None else float(scores[row])
            answers[index].append(
                self._answer(top, row, k, prepared.sources[index], decision, box, score)
            )
        out: list[Identification] = []
        for index, source in enumerate(prepared.sources):
            out += answers[index] or [
                Identification(source, None, float("inf"), [], decision, no_face=True)
            ]
        return out

    def _answer(
        self,
        top: Any,
        row: int,
        k: int,
        source: str,
        decision: DecisionBasis,
        box: list[float] | None,
        score: float | None,
    ) -> Identification:
        """The decision on one probe row of a search result: on its normalised `score` when
        the gallery decides on one and the probe has a full cohort, else on its distance."""
        candidates = [
            Candidate(self.names[int(i)], float(d))
            for d, i in zip(
                top.distances[row].tolist(), top.identity_ids[row].tolist(), strict=True
            )
            if int(i) >= 0
        ]
        best = candidates[0].distance if candidates else float("inf")
        normalised = score is not None and math.isfinite(score)
        if normalised:
            assert decision.normalised_threshold is not None and score is not None
            accepted = bool(candidates) and accepts(score, decision.normalised_threshold)
        else:
            accepted = bool(candidates) and accepts(best, decision.threshold)
        margin = candidates[1].distance - best if len(candidates) >= 2 else None
        ambiguous = (
            accepted and margin is not None and margin <= AMBIGUOUS_MARGIN * decision.threshold
        )
        return Identification(
            source,
            candidates[0].identity if accepted else None,
            best,
            candidates[:k],
            decision,
            margin=margin,
            ambiguous=ambiguous,
            box=box,
            score=score if normalised else None,
        )

    def verify(self, identity: str, image: Images) -> Verification:
        """Whether `image` shows `identity` (its score against that identity alone, at the
        gallery's threshold).

        Raises:
            NotFoundError: no such identity. DataError: an unreadable image, or not one.
            NoFaceError: the model's face step found no face in it.
        """
        read = self.read(image)
        if len(read.prepared.given) != 1:
            raise DataError("verify takes one image; use identify for several")
        read.prepared.require_faces(self.recognizer.preprocessing.face)
        stored = self.store.embeddings_of(identity, self.recognizer.embedding_dim)
        z = read.z
        if self.settings["scoring"] == "centroid":
            distance = float(
                np.asarray(self.recognizer.dissimilarity(z, stored.mean(0, keepdims=True)))[0]
            )
        else:
            distance = float(
                np.asarray(
                    self.recognizer.dissimilarity(np.repeat(z, len(stored), 0), stored)
                ).min()
            )
        self._fresh()
        threshold = self.decision.threshold
        return Verification(
            identity, read.prepared.sources[0], distance, accepts(distance, threshold), threshold,
            self.decision.far,
        )  # fmt: skip

    def identities(self) -> list[IdentityInfo]:
        """Every identity, by name, with its number of examples."""
        return [IdentityInfo(*row) for row in self.store.identity_names()]

    def has_identity(self, name: str) -> bool:
        with self.store.engine.connect() as conn:
            return self.store.identity_id(conn, name) is not None

    def identity_page(
        self,
        offset: int = 0,
        limit: int = 100,
        after: str | None = None,
        contains: str | None = None,
    ) -> tuple[list[IdentityInfo], int]:
        """A page of identities by name (read by the database: `GalleryStore.identity_page`)
        and the number matching `contains` (a case-insensitive part of the name) in all."""
        rows, total = self.store.identity_page(offset, limit, after, contains)
        return [IdentityInfo(*row) for row in rows], total

    def identity(self, name: str) -> IdentityInfo:
        """One identity with its number of examples.

        Raises:
            NotFoundError: no such identity.
        """
        row = self.store.identity_row(name)
        if row is None:
            raise NotFoundError(self.store.no_such(name))
        return IdentityInfo(*row)

    def examples(self, identity: str) -> list[ExampleRow]:
        """The stored examples of an identity (without embeddings).

        Raises:
            NotFoundError: no such identity.
        """
        return self.example_page(identity, 0, None)[0]

    def example_page(
        self, identity: str, offset: int = 0, limit: int | None = 100
    ) -> tuple[list[ExampleRow], int]:
        """A page of an identity's stored examples (oldest first) and how many it has.

        Raises:
            NotFoundError: no such identity.
        """
        rows, total = self.store.example_page(identity, offset, limit)
        if total == 0 and not self.has_identity(identity):
            raise NotFoundError(self.store.no_such(identity))
        return rows, total

    def stats(self) -> dict[str, Any]:
        """Counts, settings, and the decision: the rule, the threshold at the current size,
        the estimated FPIR there and what it rests on, and the expected identification rate
        where the gallery has genuine data (identities of two or more images)."""
        identities, examples = self.store.counts()
        s = self.store.settings()
        self.settings = s
        self.decision = self._stored_decision(s)
        own = self._own()
        rule, target = self.rule
        rate = (
            own.identification_rate(
                self.decision.threshold, self.decision.normalised_threshold, self.normalisation
            )
            if own is not None
            else None
        )
        return {
            "location": self.store.location,
            "identities": identities,
            "examples": examples,
            "model_path": s["model_path"],
            "model_fingerprint": s["model_fingerprint"],
            "metric": s["metric"],
            "scoring": s["scoring"],
            "normalisation": self.normalisation,
            "normalised_threshold": self.decision.normalised_threshold,
            "rule": rule,
            "target": target,
            "threshold": self.decision.threshold,
            "estimated_fpir": self.decision.estimated_fpir,
            "far": self.decision.far,
            "basis": self.decision.basis,
            "decision_generation": self.decision.generation,
            "expected_identification_rate": rate,
            "genuine_probes": int(own.genuine.size) if own is not None else 0,
            "self_calibrated_at": own.identities if own is not None else None,
            "calibrated_on": s["calibrated_on"],
            "keep_images": s["keep_images"],
            "schema_version": s["schema_version"],
            "search": self.search_kind,
            "search_index": self.search_status(),
            "created_at": s["created_at"],
        }

    # ------------------------------------------------------------------------------------
    # Moving to another model

    def reembed(self, recognizer: RecognitionModel, far: float | None = None) -> int:
        """Embed every stored image with another model and bind the gallery to it, in one
        transaction (the threshold re-derived from its calibration; `far` switches the rule to
        that pair rate). Returns the number of examples re-embedded.

        Raises:
            ConfigError: the gallery did not keep its images, or the model cannot support
                the rule.
        """
        if not self.settings["keep_images"]:
            raise ConfigError(
                f"{self.store.location} did not keep its images (create it with "
                "keep_images=True / --keep-images), so it cannot be re-embedded: enroll the "
                "people again into a new gallery of the new model"
            )
        if recognizer.head is not None:
            raise ConfigError("a pair-classifier model cannot serve a gallery")
        thresholds = recognizer.thresholds
        if thresholds is None:
            raise ConfigError(recognizer.no_thresholds_message())
        rule, target = ("far", far) if far is not None else self.rule
        identities, examples = self.store.counts()
        identification_basis(  # refused before anything is done
            rule, target, identities, examples, self.settings["scoring"], thresholds, None, 0
        )
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
            z = (
                np.asarray(recognizer.read(paths).z)
                if paths
                else np.empty((0, recognizer.embedding_dim), np.float32)
            )
        previous = self.recognizer
        self.recognizer = recognizer  # `_rederive` reads the new model's calibration
        self.settings = {**self.settings, "rule": rule, "target": target, "self_calibration": None}
        try:
            self.store.replace_embeddings(
                [example_id for example_id, _, _ in rows],
                z,
                {
                    "model_fingerprint": recognizer.fingerprint,
                    "model_path": str(recognizer.model_dir),
                    "embedding_dim": recognizer.embedding_dim,
                    "metric": recognizer.metric,
                    "rule": rule,
                    "target": target,
                    "self_calibration": None,
                    "self_calibration_generation": None,
                    "calibrated_on": thresholds.calibrated_on,
                },
            )
        except BaseException:
            self.recognizer = previous
            raise
        self.settings = self.store.settings()
        old = self.cache
        self.cache = SearchCache(
            self.store, old.asked, recognizer.embedding_dim, old.target, old.persist
        )
        self._maybe_calibrate()
        return len(rows)

    # ------------------------------------------------------------------------------------
    # The search cache

    @property
    def search(self) -> Any:
        """The search in use (`ExactSearch` or `IndexSearch`)."""
        return self.cache.search

    @property
    def search_kind(self) -> str:
        """The kind of search in use ("auto" resolved)."""
        return self.cache.kind

    @property
    def names(self) -> dict[int, str]:
        return self.cache.names

    def load_search(self) -> dict[str, Any]:
        """Bring the search in step with the database now (read its persisted snapshot, or
        build one) instead of at the first search; returns what it did (`search_status`).
        A service calls it before it reports ready."""
        self._fresh()
        return self.search_status()

    def search_status(self) -> dict[str, Any]:
        """The search in use: kind, examples, the snapshot it rests on, its index's build
        and tuning (the parameters chosen and the agreement with exact search measured)."""
        cache = self.cache
        out: dict[str, Any] = {"search": cache.kind, "asked": cache.asked, **cache.status}
        snapshot = cache.snapshot
        if snapshot is not None:
            out["index_folder"] = str(snapshot.folder)
            if snapshot.index is not None:
                out["index"] = {"kind": snapshot.index.kind, **snapshot.index.build}
                out["params"] = snapshot.index.params
            if snapshot.tuning is not None:
                out["tuning"] = snapshot.tuning.as_dict()
        return out

    def invalidate_search(self) -> None:
        """Read the database again before the next search (and the settings with it)."""
        self.cache.invalidate()

    def _fresh(self) -> None:
        """Bring the search in step with the database, and read the threshold, when another
        process has written."""
        if self.store.generation() == self.cache.generation:
            return
        self.settings = self.store.settings()
        self.cache.fresh(self.settings)
        self.decision = self._stored_decision(self.settings)

    def _after_write(self, generation: int, update: Any) -> None:
        """After this process's write at `generation`: apply `update` to the cached search
        when the cache was current just before it, else leave it stale for `_fresh`."""
        self.cache.apply(generation, update, self.settings)


def _checked_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"an identity needs a non-empty name, got {name!r}")
    return name.strip()


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
