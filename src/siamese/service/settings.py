"""How `siamese serve` runs: the settings every worker process receives."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ServiceSettings:
    """How `siamese serve` runs.

    Attributes:
        gallery: the gallery (SQLite file or database URL).
        model: the model folder, when not the one the gallery was created with.
        device: where the model runs: auto (None), cpu, cuda, cuda:N or mps.
        search: "exact" or "faiss".
        engine: the model's runtime: "auto" (onnxruntime where it reproduces the model,
            else PyTorch), "onnxruntime" or "pytorch" (`siamese.export.serving_engine`).
        max_upload_bytes: largest request body (all images of a request together).
        max_pixels: largest image (width × height), checked before decoding.
        max_batch: rows per forward pass; 1 turns micro-batching off.
        batch_window_ms: how long a request waits for others to share its forward pass.
        require_keys: refuse requests without a valid API key (False only on loopback with no
            keys made).
        max_wait_ms: the longest wait a stage of recognition (prepare, embed, gallery) admits
            a request into; beyond it the request is refused at once with 503 and
            Retry-After (`siamese.service.admission`).
        max_queue: the most requests one stage holds at once, waiting or running.
        request_timeout_s: a request still waiting for a stage after this long is answered
            503 instead of being served late.
        rate_per_minute: requests a minute each API key may make (0: unlimited), unless the
            key has its own (`siamese serve keys create --rate`); beyond it, 429 with
            Retry-After. Counted per worker process.
    """

    gallery: str
    model: str | None = None
    device: str | None = None
    search: str = "exact"
    engine: str = "auto"
    max_upload_bytes: int = 10 * 2**20
    max_pixels: int = 40_000_000
    max_batch: int = 32
    batch_window_ms: float = 2.0
    require_keys: bool = True
    max_wait_ms: float = 500.0
    max_queue: int = 64
    request_timeout_s: float = 30.0
    rate_per_minute: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServiceSettings:
        return cls(**json.loads(text))
