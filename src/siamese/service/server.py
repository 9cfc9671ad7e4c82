"""Running the service under uvicorn: one process, or several workers sharing the gallery."""

from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile

from siamese.errors import ConfigError
from siamese.export.serving_engine import ENGINES
from siamese.recognition.gallery_store import GalleryStore
from siamese.service.keys import active_key_count
from siamese.service.metrics import MULTIPROCESS_ENV
from siamese.service.settings import ServiceSettings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_settings(settings: ServiceSettings, host: str) -> ServiceSettings:
    """`settings` with `require_keys` decided: required whenever a key exists in any gallery
    served; without any, serving is allowed on loopback only (the default gallery's admin keys
    administer every gallery, so it must have one elsewhere).

    Raises:
        ConfigError: no API key and a host other than loopback; no gallery there; an
            unknown engine; a limit out of range.
    """
    for value, option in (
        (settings.max_wait_ms, "--max-wait-ms"),
        (settings.request_timeout_s, "--request-timeout"),
        (settings.max_queue, "--max-queue"),
    ):
        if not value > 0:
            raise ConfigError(f"{option} must be more than 0, got {value}")
    if not settings.rate_per_minute >= 0:
        raise ConfigError(f"--rate-limit must be 0 (none) or more, got {settings.rate_per_minute}")
    if settings.engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, got {settings.engine!r}")
    keys = {}
    for location in settings.gallery_locations().values():  # each opens, or says why not
        store = GalleryStore.open(location)
        try:
            keys[location] = active_key_count(store)
        finally:
            store.close()
    if keys[settings.gallery] == 0 and not is_loopback(host):
        raise ConfigError(
            f"no API key exists for {settings.gallery}, so the service would be open to anyone "
            f"who reaches {host}: create one first (siamese serve keys create "
            f"{settings.gallery} --role admin), or serve on 127.0.0.1"
        )
    required = sum(keys.values()) > 0 or not is_loopback(host)
    return ServiceSettings(**{**settings.__dict__, "require_keys": required})


def serve(
    settings: ServiceSettings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1
) -> None:
    """Serve until interrupted (Ctrl-C, SIGTERM). Several workers each load the model and
    share the gallery through its database.

    Raises:
        ConfigError: as `checked_settings`; an invalid port or worker count.
    """
    import uvicorn

    if not 0 < port < 65536:
        raise ConfigError(f"--port must be 1 … 65535, got {port}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    settings = checked_settings(settings, host)
    os.environ["SIAMESE_SERVE_SETTINGS"] = settings.to_json()
    metrics_dir = None
    if workers > 1:  # every worker's metrics in files there, summed by /metrics (`metrics`)
        metrics_dir = tempfile.mkdtemp(prefix="siamese-metrics-")
        os.environ[MULTIPROCESS_ENV] = metrics_dir
    try:
        uvicorn.run(
            "siamese.service.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            server_header=False,
        )
    finally:
        if metrics_dir is not None:
            os.environ.pop(MULTIPROCESS_ENV, None)
            shutil.rmtree(metrics_dir, ignore_errors=True)
