"""Per-key rate limits: each API key may make so many requests a minute (its own limit, set
when the key is made, else the service's `--rate-limit`); beyond it the service answers 429
with Retry-After, the seconds until the key may call again.

A token bucket per key: it holds up to ten seconds' worth of requests (at least one), so a
client may burst briefly and then runs at its rate. Buckets live in the worker process (a
limit is per worker: with `--workers N` a key may make up to N times its rate); they are
touched on the event loop's thread only, so they need no lock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable

from siamese.service.errors import ApiError

BURST_SECONDS = 10.0
"""How many seconds of a key's rate it may spend at once."""


class RateLimited(ApiError):
    """429: the key spent its requests; Retry-After says when it may call again."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__("rate_limited", message)
        self.retry_after = max(1, math.ceil(retry_after_s))


class RateLimits:
    """Token buckets by key id."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key → (tokens, last time)

    def take(self, key_id: Hashable, per_minute: float) -> None:
        """Spend one request of key `key_id`, whose rate is `per_minute` (0: unlimited).

        Raises:
            RateLimited: the key has no request left now.
        """
        if per_minute <= 0:
            return
        rate = per_minute / 60.0
        capacity = max(1.0, rate * BURST_SECONDS)
        now = self.clock()
        tokens, last = self._buckets.get(key_id, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[key_id] = (tokens, now)
            wait = (1.0 - tokens) / rate
            raise RateLimited(
                f"this API key may make {per_minute:g} requests a minute; retry in "
                f"{math.ceil(wait)} s (Retry-After)",
                wait,
            )
        self._buckets[key_id] = (tokens - 1.0, now)
