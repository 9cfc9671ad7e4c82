"""Admission: recognition work served in arrival order through every stage, and refused at
once (503 with Retry-After) when a stage's queue would make the caller wait too long.

A recognising request passes three stages: `prepare` (decode the upload, detect and align
its faces: a pool of threads, one per core), `embed` (the model, behind the micro-batcher)
and `gallery` (search and database work: one thread, so writes never interleave). Each stage
is a `Stage`: work runs on its own executor, whose queue is first-in first-out, so no request
overtakes one that arrived before it (a lock or a shared pool would let late arrivals barge
in, which is what gave the tail of the latency its length). A stage admits a request while
the wait it predicts — the requests already in it, times its recent seconds per request,
over its parallelism — stays within `max_wait_s`, and never more than `max_inside` at once;
beyond that the request is refused with `Overloaded` before it queues, so a client learns in
milliseconds to come back later instead of waiting seconds (the Retry-After it gets is that
predicted wait, at least a second).

Everything here runs on the event loop's thread: the counts need no lock.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from contextvars import ContextVar
from typing import Any, TypeVar

from siamese.service.errors import ApiError

T = TypeVar("T")

SMOOTHING = 0.2
"""Weight of the newest duration in a stage's running mean of seconds per request."""


class Overloaded(ApiError):
    """A stage is full: 503 with Retry-After (seconds)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__("unavailable", message)
        self.retry_after = max(1, math.ceil(retry_after_s))


class TimedOut(ApiError):
    """The request's deadline passed while it waited: 503 with Retry-After."""

    def __init__(self, message: str) -> None:
        super().__init__("unavailable", message)
        self.retry_after = 1


class Stage:
    """One stage of recognition with a bounded, first-come-first-served queue.

    Args:
        name: what the stage does, for messages and metrics ("prepare", "embed", "gallery").
        parallelism: how many requests it works on at once (its executor's threads, or 1
            for the micro-batched model: a batch at a time).
        max_wait_s: the longest predicted wait it admits a request into.
        max_inside: the most requests in it at once (running or queued), whatever the
            prediction.
        first_estimate_s: seconds per request assumed before any was measured.
        on_refuse: called with "overloaded" or "timeout" for each request refused (metrics).
    """

    def __init__(
        self,
        name: str,
        parallelism: int,
        max_wait_s: float,
        max_inside: int,
        first_estimate_s: float = 0.02,
        on_refuse: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.parallelism = max(1, int(parallelism))
        self.max_wait_s = float(max_wait_s)
        self.max_inside = max(1, int(max_inside))
        self.seconds_per_request = float(first_estimate_s)
        self.inside = 0
        self.refused = 0
        self.on_refuse = on_refuse

    def predicted_wait_s(self) -> float:
        """How long a request entering now would wait before its turn."""
        return self.inside / self.parallelism * self.seconds_per_request

    def admit(self) -> None:
        """Count a request in, or refuse it.

        Raises:
            Overloaded: the stage holds `max_inside` requests, or the predicted wait exceeds
                `max_wait_s`.
        """
        wait = self.predicted_wait_s()
        if self.inside >= self.max_inside or (self.inside > 0 and wait > self.max_wait_s):
            self._refused("overloaded")
            raise Overloaded(
                f"the service is at capacity ({self.inside} requests waiting to {self.name}, "
                f"about {wait:.1f} s of work); retry after the Retry-After seconds",
                wait,
            )
        self.inside += 1

    def _refused(self, reason: str) -> None:
        self.refused += 1
        if self.on_refuse is not None:
            self.on_refuse(reason)

    def _check_deadline(self) -> None:
        try:
            check_deadline(request_deadline.get(), self.name)
        except TimedOut:
            self._refused("timeout")
            raise

    def leave(self, seconds: float | None = None) -> None:
        """Count a request out; `seconds`: how long its own work took (updates the mean)."""
        self.inside -= 1
        if seconds is not None:
            self.seconds_per_request += SMOOTHING * (seconds - self.seconds_per_request)

    async def run(self, executor: Executor, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` on `executor` (first in, first out) once admitted.

        Raises:
            Overloaded: refused at the door. TimedOut: the request's deadline passed.
        """
        self._check_deadline()
        self.admit()
        started: list[float] = []

        def timed() -> T:
            started.append(time.perf_counter())
            return work(*args)

        try:
            result = await asyncio.get_running_loop().run_in_executor(executor, timed)
        except BaseException:
            self.leave()
            raise
        self.leave(time.perf_counter() - started[0])
        return result

    async def run_async(self, work: Callable[[], Awaitable[T]]) -> T:
        """`await work()` once admitted (for a stage that is not an executor: the batcher).

        Raises:
            Overloaded: refused at the door. TimedOut: the request's deadline passed.
        """
        self._check_deadline()
        self.admit()
        started = time.perf_counter()
        try:
            result = await work()
        except BaseException:
            self.leave()
            raise
        self.leave(time.perf_counter() - started)
        return result


class Door:
    """Admission at the door, before a request's body is even read: the requests inside the
    service (admitted, not yet answered) against the rate it has been answering them.

    The stages bound what waits at each step, but a request refused at the second stage
    has already waited in the first, and reading an upload costs the event loop time before
    any stage sees it. So recognising requests are counted in here first: one is admitted
    while the wait it would see — those inside over the recent answers per second — stays
    within `max_wait_s` (and fewer than `max_inside` are in); otherwise it is refused at
    once, its body unread. While fewer than `min_answers` were answered in the last
    `window_s` (an idle or starting service), only `max_inside` bounds it.
    """

    def __init__(
        self,
        max_wait_s: float,
        max_inside: int,
        window_s: float = 3.0,
        min_answers: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_wait_s, self.max_inside = float(max_wait_s), max(1, int(max_inside))
        self.window_s, self.min_answers, self.clock = window_s, min_answers, clock
        self.inside = 0
        self.refused = 0
        self._answered: deque[float] = deque()

    def answers_per_second(self) -> float | None:
        """Requests answered a second over the last window (None: too few to say)."""
        now = self.clock()
        while self._answered and self._answered[0] < now - self.window_s:
            self._answered.popleft()
        if len(self._answered) < self.min_answers:
            return None
        return len(self._answered) / self.window_s

    def predicted_wait_s(self) -> float:
        rate = self.answers_per_second()
        return 0.0 if rate is None else self.inside / rate

    def admit(self) -> None:
        """Count a request in, or refuse it.

        Raises:
            Overloaded: the service holds `max_inside` requests, or the wait it predicts
                exceeds `max_wait_s`.
        """
        wait = self.predicted_wait_s()
        if self.inside >= self.max_inside or wait > self.max_wait_s:
            self.refused += 1
            raise Overloaded(
                f"the service is at capacity ({self.inside} requests in progress, about "
                f"{wait:.1f} s of work); retry after the Retry-After seconds",
                max(1.0, wait - self.max_wait_s),
            )
        self.inside += 1

    def leave(self) -> None:
        """Count a request out, answered."""
        self.inside -= 1
        self._answered.append(self.clock())


request_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)
"""The current request's deadline (time.monotonic()), set by the middleware."""


def check_deadline(deadline: float | None, stage: str) -> None:
    """Raises TimedOut when `deadline` (a time.monotonic() value) has passed."""
    if deadline is not None and time.monotonic() > deadline:
        raise TimedOut(f"the request waited past its timeout before it could {stage}; retry later")
