"""The service's Prometheus metrics (prometheus_client, one registry per app): requests by
route and status, latency histograms, gallery size, micro-batch sizes. Each worker process
counts its own requests (scrape each, or sum them)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

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
        self.identities = Gauge(
            "siamese_gallery_identities", "Identities enrolled", registry=self.registry
        )
        self.examples = Gauge(
            "siamese_gallery_examples", "Examples enrolled", registry=self.registry
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def gallery_size(self, identities: int, examples: int) -> None:
        self.identities.set(identities)
        self.examples.set(examples)

    def render(self) -> bytes:
        return generate_latest(self.registry)
