"""Micro-batching: concurrent requests share one forward pass.

Requests queue their model inputs; one task takes every input already waiting (and those that
arrive within `window_s`, up to `max_batch` rows), runs the model once on their concatenation
in a thread of its own (the event loop keeps serving), and hands each request its rows. While
the model runs, new requests queue, so under load batches grow by themselves; alone, a request
waits at most `window_s`. `benchmarks/bench_service.py` measures it against one-by-one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch


class MicroBatcher:
    """Args:
    forward: (N, ...) model inputs → (N, D) outputs; called in one worker thread.
    max_batch: rows per forward pass at most (1: one request at a time).
    window_s: how long the first request of a batch waits for company.
    on_batch: called with each batch's row count (for metrics).
    """

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        max_batch: int = 32,
        window_s: float = 0.002,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.forward = forward
        self.max_batch = max(1, int(max_batch))
        self.window_s = max(0.0, float(window_s))
        self.on_batch = on_batch
        self._queue: asyncio.Queue[tuple[torch.Tensor, asyncio.Future[torch.Tensor]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="siamese-model")

    def start(self) -> None:
        """Start the batching task on the running event loop."""
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(n, ...) inputs of one request → its (n, D) outputs."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        if x.shape[0] == 0:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self.forward, x)
        future: asyncio.Future[torch.Tensor] = asyncio.get_running_loop().create_future()
        await self._queue.put((x, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        carry = None  # a request that did not fit the previous batch: first in the next
        while True:
            items = [carry if carry is not None else await self._queue.get()]
            carry = None
            rows = items[0][0].shape[0]
            deadline = loop.time() + self.window_s
            while rows < self.max_batch:
                try:
                    if self._queue.empty():
                        remaining = deadline - loop.time()
                        if remaining <= 0:
                            break
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    else:
                        item = self._queue.get_nowait()
                except (asyncio.TimeoutError, asyncio.QueueEmpty):
                    break
                if rows + item[0].shape[0] > self.max_batch:
                    carry = item
                    break
                items.append(item)
                rows += item[0].shape[0]
            live = [(x, f) for x, f in items if not f.cancelled()]
            if not live:
                continue
            batch = torch.cat([x for x, _ in live])
            if self.on_batch is not None:
                self.on_batch(batch.shape[0])
            try:
                out = await loop.run_in_executor(self._executor, self.forward, batch)
            except Exception as err:  # every request of the batch gets the error
                for _, future in live:
                    if not future.done():
                        future.set_exception(err)
                continue
            start = 0
            for x, future in live:
                if not future.done():
                    future.set_result(out[start : start + x.shape[0]])
                start += x.shape[0]
