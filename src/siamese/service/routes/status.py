"""The service itself: the model and gallery a route addresses (`/model`), liveness
(`/healthz`), readiness (`/readyz`: every gallery's database answers) and Prometheus metrics
(`/metrics`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from siamese.service.dependencies import Reader, Running, Target
from siamese.service.errors import scrub
from siamese.service.schemas import ModelOut, StatusOut

model_router = APIRouter(tags=["service"])
"""Routes of one gallery (under `/v1` for the default, `/v1/galleries/{gallery}` for any)."""
router = APIRouter(tags=["service"])
"""Routes of the whole service."""


@model_router.get("/model", response_model=ModelOut)
async def model(_: Reader, served: Target) -> dict[str, Any]:
    """The gallery's model (its engine, thresholds, preprocessing) and the gallery's state."""
    recognizer, engine = served.recognizer, served.runner.engine
    description = recognizer.description
    stats = await served.locked(served.gallery.stats)
    index = dict(stats["search_index"])
    if index.get("index_folder"):  # by kind only: no path of the server's disk leaves it
        index["index_folder"] = Path(index["index_folder"]).name
    stats = {**stats, "search_index": index}
    return {
        "name": Path(str(recognizer.model_dir)).name,
        # the export's folder by name only: no path of the server's disk leaves it
        "engine": engine.as_dict()
        | {"export_dir": engine.export_dir and Path(engine.export_dir).name},
        "fingerprint": recognizer.fingerprint,
        "input_shape": [int(v) for v in description["input_shape"]],
        "embedding_dim": recognizer.embedding_dim,
        "metric": recognizer.metric,
        "preprocessing": description.get("preprocessing") or {},
        "thresholds": description.get("thresholds"),
        "gallery_threshold": stats["threshold"],
        "gallery_far": stats["far"],
        "gallery": stats,
    }


@router.get("/healthz", response_model=StatusOut)
async def healthz() -> dict[str, Any]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=StatusOut, responses={503: {"model": StatusOut}})
async def readyz(request: Request) -> Any:
    """Every served gallery's database answers (else 503: retry later)."""
    service = getattr(request.app.state, "service", None)
    if service is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    try:
        for served in list(service.galleries.values()):
            await run_in_threadpool(served.gallery.store.generation)
    except Exception as err:
        detail = scrub(type(err).__name__)
        return JSONResponse({"status": "database unavailable", "detail": detail}, status_code=503)
    return {"status": "ready"}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(service: Running) -> Response:
    """Prometheus text format."""
    for name, served in list(service.galleries.items()):
        identities, examples = await run_in_threadpool(served.gallery.store.counts)
        service.metrics.gallery_size(name, identities, examples)
    return Response(service.metrics.render(), media_type=service.metrics.content_type)
