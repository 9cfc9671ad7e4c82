"""What the app holds while it runs (`Service`): the galleries it serves (each on a thread of
its own), the model runners (one per distinct model: its recogniser, engine and micro-batcher),
the thread pool that decodes and detects, the admission stages, the metrics and rate limits;
and the two steps every recognising route shares (an upload prepared, then embedded).

Galleries: `ServiceSettings.galleries` names each one it serves (the first is the default, which
the `/v1/...` routes address; `/v1/galleries/{name}/...` addresses any). With
`ServiceSettings.folder` the galleries are the SQLite files in that folder, found when first
asked for (so a gallery created through another worker is served by this one too) and made or
deleted through the API.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from siamese.export.serving_engine import EngineChoice, load_serving_recognizer
from siamese.recognition import Gallery
from siamese.recognition.model_inputs import EmbeddedImages
from siamese.recognition.recognition_model import RecognitionModel
from siamese.service import keys as api_keys
from siamese.service.admission import Door, Stage
from siamese.service.batching import MicroBatcher
from siamese.service.errors import ApiError
from siamese.service.metrics import ServiceMetrics
from siamese.service.rate_limits import RateLimited, RateLimits
from siamese.service.settings import GALLERY_SUFFIX, ServiceSettings

API_KEY_HEADER = "X-API-Key"
GALLERY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""What a gallery's name may be (it names a file in a galleries folder and a URL segment)."""


def check_gallery_name(name: str) -> str:
    """`name` when it may name a gallery.

    Raises:
        ApiError: invalid_request, with the rule.
    """
    if not GALLERY_NAME.match(name):
        raise ApiError(
            "invalid_request",
            f"gallery name {name[:80]!r}: use 1 to 64 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit",
        )
    return name


class ModelRunner:
    """One model as the service runs it: its recogniser, which engine runs it, and the
    micro-batcher and admission stage its forward passes go through."""

    def __init__(self, recognizer: RecognitionModel, engine: EngineChoice, service: Service):
        self.recognizer, self.engine = recognizer, engine
        settings = service.settings
        self.batcher = MicroBatcher(
            self._forward,
            max_batch=settings.max_batch,
            window_s=settings.batch_window_ms / 1000,
            on_batch=service.metrics.batch_sizes.observe,
        )
        self.stage = service.new_stage("embed", settings.max_batch, 0.02)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # a Recognizer gives tensors, an OnnxRecognizer numpy arrays
        return torch.as_tensor(self.recognizer.embed_prepared(x))

    async def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) prepared inputs → (N, D) embeddings, once admitted to the model."""
        return await self.stage.run_async(lambda: self.batcher(x))


class ServedGallery:
    """One gallery as the service serves it: its search and writes run on a thread of its
    own, one at a time and in arrival order (a lock would let late arrivals overtake)."""

    def __init__(self, name: str, gallery: Gallery, runner: ModelRunner, service: Service):
        self.name, self.gallery, self.runner = name, gallery, runner
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"siamese-{name}")
        self.stage = service.new_stage("gallery", 1, 0.005)

    @property
    def recognizer(self) -> RecognitionModel:
        return self.runner.recognizer

    async def locked(self, work: Callable[[], Any]) -> Any:
        """Run gallery work on the gallery's thread (`admission.Stage`: refused at once when
        its queue is full)."""
        return await self.stage.run(self.pool, work)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.gallery.close()


class Service:
    """What the app holds while it runs (see the module's docstring)."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.metrics = ServiceMetrics()
        self.rate_limits = RateLimits()
        # Decoding and face detection are CPU work: as many threads as cores (more only queue
        # on the cores, and each thread loads its own detector and landmark model).
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
        self.prepare_pool = ThreadPoolExecutor(
            max_workers=max(2, cores), thread_name_prefix="siamese-prepare"
        )
        self.prepare_stage = self.new_stage("prepare", max(2, cores), 0.03)
        self.door = Door(settings.max_wait_ms / 1000, settings.max_queue)
        self.runners: dict[str, ModelRunner] = {}
        self.galleries: dict[str, ServedGallery] = {}
        self.started = False
        names = settings.gallery_locations()
        self.default = next(iter(names))
        for name, location in names.items():
            self._open(name, location)

    # ------------------------------------------------------------------------------------
    # Lifecycle

    def new_stage(self, name: str, parallelism: int, first_estimate_s: float) -> Stage:
        """An admission stage with the service's limits, counted in its metrics."""

        def refused(reason: str) -> None:
            self.metrics.refused.labels(reason).inc()

        wait_s = self.settings.max_wait_ms / 1000
        return Stage(name, parallelism, wait_s, self.settings.max_queue, first_estimate_s, refused)

    def start(self) -> None:
        """Start the batchers on the running event loop."""
        for runner in self.runners.values():
            runner.batcher.start()
        self.started = True

    async def stop(self) -> None:
        for runner in self.runners.values():
            await runner.batcher.stop()
        self.prepare_pool.shutdown(wait=False, cancel_futures=True)
        for served in self.galleries.values():
            served.close()

    def _runner(self, model: Path | str) -> ModelRunner:
        """The runner of `model`, loaded once however many galleries use it."""
        key = str(Path(model).resolve()) if "://" not in str(model) else str(model)
        if key not in self.runners:
            recognizer, engine = load_serving_recognizer(
                model, self.settings.device, self.settings.engine
            )
            runner = ModelRunner(recognizer, engine, self)
            if self.started:
                runner.batcher.start()
            self.runners[key] = runner
        return self.runners[key]

    def _open(self, name: str, location: str) -> ServedGallery:
        model = (
            self.settings.model
            if self.settings.model and name == self.default
            else Gallery.its_model(location)
        )
        runner = self._runner(model)
        gallery = Gallery.open(location, runner.recognizer, self.settings.search)
        gallery.load_search()  # before the service says it is ready, not on a first request
        served = ServedGallery(name, gallery, runner, self)
        self.galleries[name] = served
        return served

    # ------------------------------------------------------------------------------------
    # Galleries

    def gallery(self, name: str | None) -> ServedGallery:
        """The gallery called `name` (None: the default); one that appeared in the galleries
        folder (made through another worker) is opened on first use, one deleted from it is
        forgotten.

        Raises:
            ApiError: not_found, naming the galleries served.
        """
        if name is None:
            return self.galleries[self.default]
        folder = self.settings.folder
        served = self.galleries.get(name)
        if served is not None:
            if folder and name != self.default and not self._file_of(name).is_file():
                self.galleries.pop(name).close()  # deleted through another worker
            else:
                return served
        if folder and GALLERY_NAME.match(name) and self._file_of(name).is_file():
            return self._open(name, str(self._file_of(name)))
        raise ApiError(
            "not_found",
            f"no gallery {name[:80]!r}; this service serves {', '.join(sorted(self.galleries))}",
        )

    def _file_of(self, name: str) -> Path:
        assert self.settings.folder is not None
        return Path(self.settings.folder) / f"{name}{GALLERY_SUFFIX}"

    def gallery_names(self) -> list[str]:
        """Every gallery served now (a folder's files included), the default first."""
        names = set(self.galleries)
        if self.settings.folder:
            names |= {p.stem for p in Path(self.settings.folder).glob(f"*{GALLERY_SUFFIX}")}
            names = {n for n in names if GALLERY_NAME.match(n) or n == self.default}
        return [self.default, *sorted(names - {self.default})]

    def create_gallery(
        self, name: str, like: str | None, far: float | None, keep_images: bool
    ) -> ServedGallery:
        """A new gallery in the galleries folder, with the model of gallery `like` (default:
        the default gallery's).

        Raises:
            ApiError: no folder served; an invalid or taken name; no gallery `like`.
        """
        check_gallery_name(name)
        if not self.settings.folder:
            raise ApiError(
                "invalid_request",
                "this service serves a fixed set of galleries; serve a folder of galleries "
                "(siamese serve --galleries DIR) to create them through the API",
            )
        path = self._file_of(name)
        if name in self.galleries or path.exists():
            raise ApiError("conflict", f"gallery {name!r} exists")
        model = self.gallery(like)
        gallery = Gallery.create(path, model.recognizer, far=far, keep_images=keep_images)
        served = ServedGallery(name, gallery, model.runner, self)
        self.galleries[name] = served
        return served

    def delete_gallery(self, name: str) -> None:
        """Delete gallery `name` from the galleries folder (its file and all it holds).

        Raises:
            ApiError: not a gallery of the folder, or the default gallery.
        """
        served = self.gallery(name)
        if name == self.default:
            raise ApiError("conflict", "the default gallery cannot be deleted through the API")
        if not self.settings.folder:
            raise ApiError("invalid_request", "only galleries of a served folder can be deleted")
        self.galleries.pop(name)
        served.close()
        path = self._file_of(name)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        shutil.rmtree(f"{path}.index", ignore_errors=True)  # its search snapshots

    # ------------------------------------------------------------------------------------
    # Callers

    def role(self, served: ServedGallery, key: str | None, spend: bool = True) -> str:
        """The caller's role on `served`: a key opens the gallery whose database holds it and
        no other, except an admin key of the default gallery, which administers every gallery
        served. 401 without a valid key when keys are required, 429 when the key has spent
        its rate (`rate_limits`); `spend` False checks the key without counting a request
        (one request that asks about several galleries counts once)."""
        store = served.gallery.store
        if not self.settings.require_keys and api_keys.active_key_count(store) == 0:
            return "admin"  # loopback, no key made yet (a key made later takes effect at once)
        if not key:
            raise ApiError("unauthorized", f"send an API key in the {API_KEY_HEADER} header")
        caller, home = api_keys.caller_of(store, key), served.name
        if caller is None and served.name != self.default:
            # an admin key of the default gallery administers the whole service
            default = api_keys.caller_of(self.galleries[self.default].gallery.store, key)
            if default is not None and default.role == "admin":
                caller, home = default, self.default
        if caller is None:
            raise ApiError(
                "unauthorized", f"this API key is unknown or revoked for gallery {served.name!r}"
            )
        assert caller.key_id is not None
        if not spend:
            return caller.role
        own = caller.rate_per_minute
        try:
            self.rate_limits.take(
                (home, caller.key_id), self.settings.rate_per_minute if own is None else own
            )
        except RateLimited:
            self.metrics.refused.labels("rate_limit").inc()
            raise
        return caller.role

    # ------------------------------------------------------------------------------------
    # Recognition's first steps

    async def embed_one(self, served: ServedGallery, data: bytes) -> torch.Tensor:
        """(1, D) the embedding of one checked upload (its main face, for a face model)."""
        recognizer = served.recognizer
        x = await self.prepare_stage.run(self.prepare_pool, recognizer.prepare, [data])
        return await served.runner.embed(torch.as_tensor(x))

    async def read_images(
        self,
        served: ServedGallery,
        data: list[bytes],
        sources: list[str],
        every_face: bool = False,
    ) -> EmbeddedImages:
        """Recognition's first two steps, as `Gallery.read` takes them, outside the gallery's
        thread: prepared in the thread pool, embedded in the micro-batcher."""
        recognizer = served.recognizer
        prepared = await self.prepare_stage.run(
            self.prepare_pool, recognizer.prepare_images, data, every_face, sources
        )
        if prepared.x.shape[0] == 0:
            return prepared.embedded(np.empty((0, recognizer.embedding_dim), np.float32))
        return prepared.embedded(await served.runner.embed(torch.as_tensor(prepared.x)))
