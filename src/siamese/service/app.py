"""The recognition service's app factory (`siamese serve GALLERY...`): it composes the routes
(`routes/`: recognition, identities, keys, galleries, status, the page), the shared dependencies
(`dependencies`), the error handlers and the middleware around what runs (`runtime.Service`).

Images arrive as multipart uploads and are checked by content (format, size, pixel count)
before anything decodes them. Decoding and face detection run in the thread pool; the model
runs in one thread of its own behind a `MicroBatcher`, so concurrent identifications share
forward passes; the gallery's search and database work run in the thread pool under one lock
(one writer per worker; the database queues writers across workers and hosts). Every worker
checks the gallery's write counter before each search, so an identity enrolled through any
worker or host is found by the next request everywhere.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from siamese.service.dependencies import gallery_in_path
from siamese.service.error_handlers import DOCUMENTED_ERRORS, install_error_handlers
from siamese.service.middleware import install_middleware
from siamese.service.routes import galleries, identities, keys, recognition, status
from siamese.service.routes.page import mount_page
from siamese.service.runtime import Service
from siamese.service.settings import ServiceSettings


def create_app(settings: ServiceSettings) -> FastAPI:
    """The app serving `settings.gallery` (opened when the app starts)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await run_in_threadpool(Service, settings)
        service.start()
        app.state.service = service
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="siamese recognition service",
        version="1",
        description="Identify, verify and enroll people (or any classes) against galleries: "
        "`/v1/...` addresses the default gallery, `/v1/galleries/{gallery}/...` any.",
        lifespan=lifespan,
        responses=DOCUMENTED_ERRORS,
    )
    install_error_handlers(app)
    install_middleware(app, settings)
    # every route of one gallery twice: for the default gallery, and for any by name
    for prefix, declared in (("/v1", []), ("/v1/galleries/{gallery}", [Depends(gallery_in_path)])):
        for router in (recognition.router, identities.router, keys.router, status.model_router):
            app.include_router(router, prefix=prefix, dependencies=declared)
    app.include_router(galleries.router)
    app.include_router(status.router)
    mount_page(app)
    return app


def app_from_environment() -> FastAPI:
    """The app of `siamese serve` in each uvicorn worker (settings in SIAMESE_SERVE_SETTINGS)."""
    return create_app(ServiceSettings.from_json(os.environ["SIAMESE_SERVE_SETTINGS"]))


__all__ = ["ServiceSettings", "app_from_environment", "create_app"]
