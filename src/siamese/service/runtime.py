"""What the app holds while it runs (`Service`): the gallery and its lock, the thread pool that
decodes and detects, the micro-batcher that runs the model, the metrics; and the two steps
every recognising route shares (an upload prepared, then embedded)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from starlette.concurrency import run_in_threadpool

from siamese.export.serving_engine import load_serving_recognizer
from siamese.recognition import Gallery
from siamese.recognition.images import EmbeddedImages
from siamese.service import keys as api_keys
from siamese.service.batching import MicroBatcher
from siamese.service.errors import ApiError
from siamese.service.metrics import ServiceMetrics
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
        self.lock = threading.Lock()
        # Decoding and face detection are CPU work: as many threads as cores (more only queue
        # on the cores, and each thread loads its own detector and landmark model).
        self.prepare_pool = ThreadPoolExecutor(
            max_workers=max(
                2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
            ),
            thread_name_prefix="siamese-prepare",
        )
        self.metrics = ServiceMetrics()
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
        self.gallery.close()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # a Recognizer gives tensors, an OnnxRecognizer (an export as --model) numpy arrays
        return torch.as_tensor(self.recognizer.embed_prepared(x))

    async def locked(self, work: Callable[[], Any]) -> Any:
        """Run gallery work in the thread pool, one at a time in this worker."""

        def run() -> Any:
            with self.lock:
                return work()

        return await run_in_threadpool(run)

    def role(self, key: str | None) -> str:
        """The caller's role; raises 401 without a valid key when keys are required."""
        if not self.settings.require_keys and api_keys.active_key_count(self.gallery.store) == 0:
            return "admin"  # loopback, no key made yet (a key made later takes effect at once)
        if not key:
            raise ApiError("unauthorized", f"send an API key in the {API_KEY_HEADER} header")
        role = api_keys.role_of(self.gallery.store, key)
        if role is None:
            raise ApiError("unauthorized", "this API key is unknown or revoked")
        return role

    async def embed_one(self, data: bytes) -> torch.Tensor:
        """(1, D) the embedding of one checked upload (its main face, for a face model)."""
        loop = asyncio.get_running_loop()
        x = await loop.run_in_executor(self.prepare_pool, self.recognizer.prepare, [data])
        return await self.batcher(torch.as_tensor(x))

    async def read_images(
        self, data: list[bytes], sources: list[str], every_face: bool = False
    ) -> EmbeddedImages:
        """Recognition's first two steps, as `Gallery.read` takes them, outside the gallery's
        lock: prepared in the thread pool, embedded in the micro-batcher."""
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(
            self.prepare_pool, self.recognizer.prepare_images, data, every_face, sources
        )
        if prepared.x.shape[0] == 0:
            return prepared.embedded(np.empty((0, self.recognizer.embedding_dim), np.float32))
        return prepared.embedded(await self.batcher(torch.as_tensor(prepared.x)))
