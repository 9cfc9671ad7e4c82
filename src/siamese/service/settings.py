"""How `siamese serve` runs: the settings every worker process receives."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from siamese.errors import ConfigError

GALLERY_SUFFIX = ".sqlite"
"""The files of a galleries folder that are galleries."""


def gallery_name(location: str) -> str:
    """The name a gallery is served under when none is given: a file's stem, a database
    URL's database name; lowercased, other characters than letters, digits, '-' and '_'
    made '-'."""
    text = location.split("?", 1)[0].rstrip("/")
    stem = text.rsplit("/", 1)[-1] if "://" in text else Path(text).stem
    name = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")[:64]
    return name or "default"


_NAMED = re.compile(r"^([a-z0-9][a-z0-9_-]{0,63})=(.+)$")


def gallery_targets(
    targets: list[str], folder: str | None = None, default: str | None = None
) -> tuple[str, dict[str, str], str]:
    """What `siamese serve` was given, as (default gallery's location, name → location of
    every gallery given, default gallery's name).

    Args:
        targets: galleries, each a location or NAME=LOCATION; the first is the default.
        folder: a folder of galleries; its `default` (else "default") gallery is the default
            unless `targets` name one.
        default: the default gallery's name.
    Raises:
        ConfigError: no gallery; a name given twice; a default that is not among them.
    """
    named: dict[str, str] = {}
    for target in targets:
        match = _NAMED.match(target)
        name, location = (match.group(1), match.group(2)) if match else (None, target)
        name = name or gallery_name(location)
        if name in named:
            raise ConfigError(
                f"two galleries are named {name!r} ({named[name]} and {location}); name them: "
                "siamese serve NAME=LOCATION ..."
            )
        named[name] = location
    if folder is not None:
        if not Path(folder).is_dir():
            raise ConfigError(f"--galleries {folder}: not a folder; create it, or give its path")
        for path in sorted(Path(folder).glob(f"*{GALLERY_SUFFIX}")):
            named.setdefault(path.stem, str(path))
        default = default or (gallery_name(targets[0]) if targets else "default")
    if not named:
        raise ConfigError(
            "give a gallery to serve (siamese serve people.sqlite), or a folder of them "
            "(--galleries DIR) with a default gallery in it: create one with `siamese gallery "
            "create DIR/default.sqlite --model MODEL`"
        )
    default = default or next(iter(named))
    if default not in named:
        where = f" in {folder}" if folder else ""
        raise ConfigError(
            f"no gallery {default!r}{where} to be the default; served: "
            f"{', '.join(sorted(named))} (--default NAME picks one)"
        )
    return named[default], named, default


@dataclass(frozen=True)
class ServiceSettings:
    """How `siamese serve` runs.

    Attributes:
        gallery: the default gallery (SQLite file or database URL), which the `/v1/...`
            routes address.
        galleries: more galleries, name → location, each at `/v1/galleries/{name}/...`.
        folder: a folder of galleries (its `*.sqlite` files, by file name), where the API may
            create and delete galleries.
        default_name: the default gallery's name (None: from its location, `gallery_name`).
        model: the model folder, when not the one the gallery was created with.
        device: where the model runs: auto (None), cpu, cuda, cuda:N or mps.
        search: "auto", "exact", "ivf", "hnsw" or "ivfpq" (`gallery_search`).
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
    galleries: dict[str, str] = field(default_factory=dict)
    folder: str | None = None
    default_name: str | None = None
    model: str | None = None
    device: str | None = None
    search: str = "auto"
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

    def gallery_locations(self) -> dict[str, str]:
        """Every gallery given by name, the default first."""
        default = self.default_name or gallery_name(self.gallery)
        return {default: self.gallery, **{k: v for k, v in self.galleries.items() if k != default}}

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServiceSettings:
        return cls(**json.loads(text))
