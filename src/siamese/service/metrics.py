"""The service's Prometheus metrics (prometheus_client, one registry per app): requests by
route and status, latency histograms, refusals, gallery size, micro-batch sizes.

With several workers (`siamese serve --workers N`) the server points PROMETHEUS_MULTIPROC_DIR
at a folder of its own before the workers start: prometheus_client then keeps every worker's
values in files there, and `/metrics`, whichever worker answers it, reports their sum (the
gallery's size: the largest a worker saw), so one scrape sees the whole service.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class ServiceMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "siamese_requests",
            "HTTP requests by method, route and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "siamese_request_seconds",
            "Request latency by route",
            ("route",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_sizes = Histogram(
            "siamese_batch_size",
            "Rows per forward pass of the model (micro-batching)",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.refused = Counter(
            "siamese_refused",
            "Requests refused before being served: a full stage (prepare, embed, gallery), "
            "a timeout, or a key's rate limit",
            ("reason",),
            registry=self.registry,
        )
        self.identities = self._gallery_gauge("identities", "Identities")
        self.examples = self._gallery_gauge("examples", "Examples")

    def _gallery_gauge(self, counted: str, what: str) -> Gauge:
        """The gauge `siamese_gallery_<counted>`: `what` enrolled, by gallery (the largest
        value across worker processes)."""
        return Gauge(
            f"siamese_gallery_{counted}",
            f"{what} enrolled, by gallery",
            ("gallery",),
            registry=self.registry,
            multiprocess_mode="max",
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def gallery_size(self, gallery: str, identities: int, examples: int) -> None:
        self.identities.labels(gallery).set(identities)
        self.examples.labels(gallery).set(examples)

    def render(self) -> bytes:
        """The Prometheus text: this process's values, or every worker's summed."""
        if os.environ.get(MULTIPROCESS_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
