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

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServiceSettings:
        return cls(**json.loads(text))
