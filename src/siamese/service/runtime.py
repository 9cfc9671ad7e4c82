"""What the app holds while it runs (`Service`): the gallery and its lock, the thread pool that
decodes and detects, the micro-batcher that runs the model, the metrics; and the two steps
every recognising route shares (an upload prepared, then embedded)."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from siamese.export.serving_engine import load_serving_recognizer
from siamese.recognition import Gallery
from siamese.recognition.images import EmbeddedImages
from siamese.service import keys as api_keys
from siamese.service.admission import Stage
from siamese.service.batching import MicroBatcher
from siamese.service.errors import ApiError
from siamese.service.metrics import ServiceMetrics
from siamese.service.rate_limits import RateLimited, RateLimits
from siamese.service.settings import ServiceSettings

API_KEY_HEADER = "X-API-Key"


class Service:
    """What the app holds while it runs: the gallery, its lock, the batcher, the metrics."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        model = settings.model or Gallery.its_model(settings.gallery)
        recognizer, self.engine = load_serving_recognizer(model, settings.device, settings.engine)
        self.gallery = Gallery.open(settings.gallery, recognizer, settings.search)
        self.recognizer = self.gallery.recognizer
        # Decoding and face detection are CPU work: as many threads as cores (more only queue
        # on the cores, and each thread loads its own detector and landmark model).
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
        self.prepare_pool = ThreadPoolExecutor(
            max_workers=max(2, cores), thread_name_prefix="siamese-prepare"
        )
        # The gallery's search and writes: one thread, so they run one at a time and in
        # arrival order (a lock would let late arrivals overtake).
        self.gallery_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="siamese-gallery")
        self.metrics = ServiceMetrics()
        wait_s, queue = settings.max_wait_ms / 1000, settings.max_queue

        def refused(reason: str) -> None:
            self.metrics.refused.labels(reason).inc()

        self.stages = {
            name: Stage(name, parallelism, wait_s, queue, first, refused)
            for name, parallelism, first in (
                ("prepare", max(2, cores), 0.03),
                ("embed", settings.max_batch, 0.02),
                ("gallery", 1, 0.005),
            )
        }
        self.rate_limits = RateLimits()
        self.batcher = MicroBatcher(
            self._forward,
            max_batch=settings.max_batch,
            window_s=settings.batch_window_ms / 1000,
            on_batch=self.metrics.batch_sizes.observe,
        )

    def start(self) -> None:
        self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        self.prepare_pool.shutdown(wait=False, cancel_futures=True)
        self.gallery_pool.shutdown(wait=True, cancel_futures=True)
        self.gallery.close()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # a Recognizer gives tensors, an OnnxRecognizer (an export as --model) numpy arrays
        return torch.as_tensor(self.recognizer.embed_prepared(x))

    async def locked(self, work: Callable[[], Any]) -> Any:
        """Run gallery work on the gallery's thread: one at a time in this worker, in arrival
        order, refused at once when its queue is full (`admission.Stage`)."""
        return await self.stages["gallery"].run(self.gallery_pool, work)

    async def _embedded(self, x: torch.Tensor) -> torch.Tensor:
        return await self.stages["embed"].run_async(lambda: self.batcher(x))

    def role(self, key: str | None) -> str:
        """The caller's role; raises 401 without a valid key when keys are required, 429
        when the key has spent its rate (`rate_limits`)."""
        if not self.settings.require_keys and api_keys.active_key_count(self.gallery.store) == 0:
            return "admin"  # loopback, no key made yet (a key made later takes effect at once)
        if not key:
            raise ApiError("unauthorized", f"send an API key in the {API_KEY_HEADER} header")
        caller = api_keys.caller_of(self.gallery.store, key)
        if caller is None:
            raise ApiError("unauthorized", "this API key is unknown or revoked")
        assert caller.key_id is not None
        own = caller.rate_per_minute
        try:
            self.rate_limits.take(
                caller.key_id, self.settings.rate_per_minute if own is None else own
            )
        except RateLimited:
            self.metrics.refused.labels("rate_limit").inc()
            raise
        return caller.role

    async def embed_one(self, data: bytes) -> torch.Tensor:
        """(1, D) the embedding of one checked upload (its main face, for a face model)."""
        x = await self.stages["prepare"].run(self.prepare_pool, self.recognizer.prepare, [data])
        return await self._embedded(torch.as_tensor(x))

    async def read_images(
        self, data: list[bytes], sources: list[str], every_face: bool = False
    ) -> EmbeddedImages:
        """Recognition's first two steps, as `Gallery.read` takes them, outside the gallery's
        lock: prepared in the thread pool, embedded in the micro-batcher."""
        prepared = await self.stages["prepare"].run(
            self.prepare_pool, self.recognizer.prepare_images, data, every_face, sources
        )
        if prepared.x.shape[0] == 0:
            return prepared.embedded(np.empty((0, self.recognizer.embedding_dim), np.float32))
        return prepared.embedded(await self._embedded(torch.as_tensor(prepared.x)))
