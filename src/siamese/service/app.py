"""The recognition service: a FastAPI app over one gallery (`siamese serve GALLERY`).

Images arrive as multipart uploads and are checked by content (format, size, pixel count)
before anything decodes them. Decoding and face detection run in the thread pool; the model
runs in one thread of its own behind a `MicroBatcher`, so concurrent identifications share
forward passes; the gallery's search and database work run in the thread pool under one lock
(one writer per worker; the database queues writers across workers and hosts). Every worker
checks the gallery's write counter before each search, so an identity enrolled through any
worker or host is found by the next request everywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import sqlalchemy as sa
import torch
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from siamese.data.image_files import DEFAULT_MAX_PIXELS, BadImageError, probe_image_bytes
from siamese.errors import SiameseError
from siamese.recognition import Gallery
from siamese.recognition.decisions import accepts
from siamese.recognition.images import EmbeddedImages
from siamese.service import keys as api_keys
from siamese.service.batching import MicroBatcher
from siamese.service.errors import ApiError, from_siamese_error, scrub
from siamese.service.metrics import ServiceMetrics
from siamese.service.schemas import (
    EmbedOut,
    EnrollmentOut,
    ErrorBody,
    ExamplePage,
    IdentifyOut,
    IdentityOut,
    IdentityPage,
    IdentityPatch,
    ModelOut,
    RemovedOut,
    StatusOut,
    VerificationOut,
)

log = logging.getLogger("siamese.service")
WEB = Path(__file__).resolve().parent / "web"
API_KEY_HEADER = "X-API-Key"
MAX_PAGE = 500


@dataclass(frozen=True)
class ServiceSettings:
    """How `siamese serve` runs.

    Attributes:
        gallery: the gallery (SQLite file or database URL).
        model: the model folder, when not the one the gallery was created with.
        device: where the model runs: auto (None), cpu, cuda, cuda:N or mps.
        search: "exact" or "faiss".
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


class Service:
    """What the app holds while it runs: the gallery, its lock, the batcher, the metrics."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.gallery = Gallery.open_with_its_model(
            settings.gallery, settings.model, settings.search, settings.device
        )
        self.recognizer = self.gallery.recognizer
        self.lock = threading.Lock()
        # Decoding and face detection are CPU work: as many threads as cores (more only queue
        # on the cores, and each thread loads its own detector and landmark model).
        self.prepare_pool = ThreadPoolExecutor(
            max_workers=max(
                2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
            ),
            thread_name_prefix="siamese-prepare",
        )
        self.metrics = ServiceMetrics()
        self.batcher = MicroBatcher(
            self._forward,
            max_batch=settings.max_batch,
            window_s=settings.batch_window_ms / 1000,
            on_batch=self.metrics.batch_sizes.observe,
        )

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # a Recognizer gives tensors, an OnnxRecognizer (an export as --model) numpy arrays
        return torch.as_tensor(self.recognizer.embed_prepared(x))

    async def locked(self, work: Callable[[], Any]) -> Any:
        """Run gallery work in the thread pool, one at a time in this worker."""

        def run() -> Any:
            with self.lock:
                return work()

        return await run_in_threadpool(run)

    def role(self, key: str | None) -> str:
        """The caller's role; raises 401 without a valid key when keys are required."""
        if not self.settings.require_keys and api_keys.active_key_count(self.gallery.store) == 0:
            return "admin"  # loopback, no key made yet (a key made later takes effect at once)
        if not key:
            raise ApiError("unauthorized", f"send an API key in the {API_KEY_HEADER} header")
        role = api_keys.role_of(self.gallery.store, key)
        if role is None:
            raise ApiError("unauthorized", "this API key is unknown or revoked")
        return role


def _service(request: Request) -> Service:
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise ApiError("unavailable", "the service is starting")
    return service


def _caller(request: Request) -> str:
    """The caller's role (401 without a valid key when keys are required)."""
    return _service(request).role(request.headers.get(API_KEY_HEADER))


def _admin(role: Annotated[str, Depends(_caller)]) -> str:
    if role != "admin":
        raise ApiError("forbidden", "this API key may recognise but not change the gallery")
    return role


Reader = Annotated[str, Depends(_caller)]
Admin = Annotated[str, Depends(_admin)]


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


_ERRORS = {
    code: {"model": ErrorBody, "description": code}
    for code in (400, 401, 403, 404, 409, 413, 415, 422, 503)
}


def create_app(settings: ServiceSettings) -> FastAPI:
    """The app serving `settings.gallery` (opened when the app starts)."""
    state: dict[str, Service] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await run_in_threadpool(Service, settings)
        service.batcher.start()
        state["service"] = service
        app.state.service = service
        try:
            yield
        finally:
            await service.batcher.stop()
            service.prepare_pool.shutdown(wait=False, cancel_futures=True)
            service.gallery.close()

    app = FastAPI(
        title="siamese recognition service",
        version="1",
        description="Identify, verify and enrol people (or any classes) against one gallery.",
        lifespan=lifespan,
        responses=_ERRORS,
    )

    def service() -> Service:
        return state["service"]

    # ------------------------------------------------------------------------------------
    # Errors and limits

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, err: ApiError) -> JSONResponse:
        return _error_response(err)

    @app.exception_handler(SiameseError)
    async def _siamese_error(_: Request, err: SiameseError) -> JSONResponse:
        return _error_response(from_siamese_error(err))

    @app.exception_handler(sa.exc.DBAPIError)
    async def _database_down(_: Request, err: sa.exc.DBAPIError) -> JSONResponse:
        log.warning("database error: %s", type(err.orig).__name__ if err.orig else err)
        response = _error_response(
            ApiError("unavailable", "the gallery's database is unavailable; retry shortly")
        )
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in err.errors()[:5]
        )
        return _error_response(ApiError("invalid_request", problems or "invalid request"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "invalid_request", 413: "payload_too_large"}.get(
            err.status_code, "invalid_request"
        )
        return JSONResponse(
            {"error": {"code": code, "message": scrub(str(err.detail))}},
            status_code=err.status_code,
        )

    @app.exception_handler(Exception)
    async def _internal(_: Request, err: Exception) -> JSONResponse:
        log.exception("internal error")  # the traceback stays in the server's log
        return _error_response(ApiError("internal", "internal error; the server's log has it"))

    @app.middleware("http")
    async def _limits_and_metrics(request: Request, call_next: Callable) -> Response:
        started = time.perf_counter()
        route = request.url.path
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_upload_bytes:
            response: Response = _error_response(
                ApiError(
                    "payload_too_large",
                    f"the request is {int(length):,} bytes; the limit is "
                    f"{settings.max_upload_bytes:,} (--max-upload-mb)",
                )
            )
        else:
            try:
                response = await call_next(request)
            except Exception:  # raised past the handlers (e.g. in a dependency's cleanup)
                log.exception("internal error")
                response = _error_response(ApiError("internal", "internal error"))
        matched = request.scope.get("route")
        if matched is not None:
            route = getattr(matched, "path", route)
        if "service" in state:
            state["service"].metrics.observe(
                request.method, route, response.status_code, time.perf_counter() - started
            )
        return response

    async def read_image(upload: UploadFile, field: str) -> bytes:
        data = await upload.read(settings.max_upload_bytes + 1)
        name = f"{field} ({upload.filename or 'upload'})"
        if len(data) > settings.max_upload_bytes:
            raise ApiError("payload_too_large", f"{name} is larger than the upload limit")
        try:
            probe_image_bytes(data, name, min(settings.max_pixels, DEFAULT_MAX_PIXELS))
        except BadImageError as err:
            code = "unsupported_media_type" if "not an image" in err.reason else "invalid_image"
            raise ApiError(code, f"{err.path}: {err.reason}") from None
        return data

    async def embed_one(data: bytes) -> torch.Tensor:
        svc = service()
        loop = asyncio.get_running_loop()
        x = await loop.run_in_executor(svc.prepare_pool, svc.recognizer.prepare, [data])
        return await svc.batcher(torch.as_tensor(x))

    async def read_images(
        data: list[bytes], sources: list[str], every_face: bool = False
    ) -> EmbeddedImages:
        """Recognition's first two steps, as `Gallery.read` takes them, outside the gallery's
        lock: prepared in the thread pool, embedded in the micro-batcher."""
        svc = service()
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(
            svc.prepare_pool, svc.recognizer.prepare_images, data, every_face, sources
        )
        if prepared.x.shape[0] == 0:
            return prepared.embedded(np.empty((0, svc.recognizer.embedding_dim), np.float32))
        return prepared.embedded(await svc.batcher(torch.as_tensor(prepared.x)))

    # ------------------------------------------------------------------------------------
    # Recognition

    @app.post("/v1/identify", response_model=IdentifyOut, tags=["recognition"])
    async def identify(
        _: Reader,
        image: Annotated[UploadFile, File(description="the photo")],
        k: Annotated[int, Query(ge=1, le=100, description="candidates listed")] = 5,
        every_face: Annotated[
            bool, Query(description="face models: one answer per face in the photo")
        ] = False,
    ) -> dict[str, Any]:
        """Who the image shows: the best identity within the threshold, or unknown."""
        data = await read_image(image, "image")
        svc = service()
        source = image.filename or "image"
        read = await read_images([data], [source], every_face)
        if not every_face:  # one photo, its main face: none is an error, as documented
            read.prepared.require_faces(svc.recognizer.preprocessing.face)
        answers = await svc.locked(lambda: svc.gallery.identify(read, k))
        return {"results": [a.as_dict() for a in answers]}

    @app.post("/v1/verify", response_model=VerificationOut, tags=["recognition"])
    async def verify(
        _: Reader,
        image: Annotated[UploadFile, File(description="the photo")],
        identity: Annotated[str | None, Form(description="the claimed identity")] = None,
        image2: Annotated[
            UploadFile | None, File(description="a second photo (instead of identity)")
        ] = None,
    ) -> dict[str, Any]:
        """Whether the image shows the claimed identity, or the same as a second image."""
        if (identity is None) == (image2 is None):
            raise ApiError("invalid_request", "give either identity or image2, not both")
        data = await read_image(image, "image")
        svc = service()
        if identity is not None:
            read = await read_images([data], [image.filename or "image"])
            result = await svc.locked(lambda: svc.gallery.verify(identity, read))
            return result.as_dict()
        assert image2 is not None
        data2 = await read_image(image2, "image2")
        z1, z2 = await asyncio.gather(embed_one(data), embed_one(data2))
        distance = float(svc.recognizer.dissimilarity(z1, z2)[0])
        threshold = svc.gallery.threshold
        return {
            "identity": None,
            "source": image.filename or "image",
            "distance": distance,
            "same": accepts(distance, threshold),
            "threshold": threshold,
            "far": svc.gallery.far,
        }

    @app.post("/v1/embed", response_model=EmbedOut, tags=["recognition"])
    async def embed(_: Reader, image: Annotated[UploadFile, File()]) -> dict[str, Any]:
        """The image's embedding under the gallery's model."""
        z = await embed_one(await read_image(image, "image"))
        svc = service()
        return {
            "embedding": z[0].tolist(),
            "dim": int(z.shape[1]),
            "model": svc.recognizer.fingerprint,
        }

    # ------------------------------------------------------------------------------------
    # Identities

    @app.get("/v1/identities", response_model=IdentityPage, tags=["identities"])
    async def list_identities(
        _: Reader,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> dict[str, Any]:
        """The enrolled identities, by name, a page at a time."""
        svc = service()
        everyone = await svc.locked(svc.gallery.identities)
        page = everyone[offset : offset + limit]
        return {
            "items": [i.as_dict() | {"name": i.name} for i in page],
            "total": len(everyone),
            "offset": offset,
            "limit": limit,
        }

    async def enroll(
        name: str, images: list[UploadFile], metadata: str | None, force: bool
    ) -> dict[str, Any]:
        meta = None
        if metadata:
            try:
                meta = json.loads(metadata)
            except json.JSONDecodeError:
                raise ApiError("invalid_request", "metadata must be a JSON object") from None
            if not isinstance(meta, dict):
                raise ApiError("invalid_request", "metadata must be a JSON object")
        if not images:
            raise ApiError("invalid_request", "send at least one image")
        data: list[Any] = [await read_image(f, f"images[{i}]") for i, f in enumerate(images)]
        svc = service()
        names = [f.filename or f"image {i + 1}" for i, f in enumerate(images)]
        # decoding, detection and the model outside the gallery's lock: only the write waits
        read = await read_images(data, names)
        result = await svc.locked(
            lambda: svc.gallery.enroll(name, read, metadata=meta, force=force)
        )
        return result.as_dict()

    @app.post("/v1/identities", response_model=EnrollmentOut, status_code=201, tags=["identities"])
    async def create_identity(
        _: Admin,
        name: Annotated[str, Form(min_length=1, max_length=512)],
        images: Annotated[list[UploadFile], File(description="one or more photos")],
        metadata: Annotated[str | None, Form(description="a JSON object")] = None,
        force: Annotated[bool, Form()] = False,
    ) -> dict[str, Any]:
        """Enrol a new identity from one or more images."""
        svc = service()
        exists = await svc.locked(lambda: svc.gallery.has_identity(name))
        if exists:
            raise ApiError(
                "conflict",
                f"identity {name!r} exists; add images with POST /v1/identities/{{name}}/examples",
            )
        return await enroll(name, images, metadata, force)

    @app.get("/v1/identities/{name}", response_model=IdentityOut, tags=["identities"])
    async def get_identity(_: Reader, name: str) -> dict[str, Any]:
        svc = service()
        info = await svc.locked(lambda: svc.gallery.identity(name))
        return info.as_dict() | {"name": info.name}

    @app.patch("/v1/identities/{name}", response_model=IdentityOut, tags=["identities"])
    async def patch_identity(_: Admin, name: str, patch: IdentityPatch) -> dict[str, Any]:
        """Rename (merging into an existing identity of the new name) and/or set metadata."""
        svc = service()

        def change() -> Any:
            current = name
            if patch.metadata is not None:
                svc.gallery.set_metadata(current, patch.metadata)
            if patch.name is not None and patch.name != current:
                svc.gallery.rename(current, patch.name)
                current = patch.name
            return svc.gallery.identity(current)

        info = await svc.locked(change)
        return info.as_dict() | {"name": info.name}

    @app.delete("/v1/identities/{name}", response_model=RemovedOut, tags=["identities"])
    async def delete_identity(_: Admin, name: str) -> dict[str, Any]:
        svc = service()
        removed = await svc.locked(lambda: svc.gallery.remove(name))
        return {"identity": name, "removed_examples": removed}

    @app.get("/v1/identities/{name}/examples", response_model=ExamplePage, tags=["identities"])
    async def list_examples(
        _: Reader,
        name: str,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> dict[str, Any]:
        svc = service()
        rows = await svc.locked(lambda: svc.gallery.examples(name))
        page = rows[offset : offset + limit]
        return {
            "items": [
                {"id": r.id, "source": r.source, "added_at": r.added_at, "sha256": r.sha256}
                for r in page
            ],
            "total": len(rows),
            "offset": offset,
            "limit": limit,
        }

    @app.get(
        "/v1/identities/{name}/examples/{example_id}/image",
        response_class=Response,
        tags=["identities"],
        responses={200: {"content": {"image/*": {}}, "description": "the enrolled image"}},
    )
    async def example_image(_: Reader, name: str, example_id: int) -> Response:
        """An enrolled image (galleries created with --keep-images)."""
        svc = service()
        data = await svc.locked(lambda: svc.gallery.example_image(name, example_id))
        kind = await run_in_threadpool(probe_image_bytes, data, "stored image")
        return Response(data, media_type=f"image/{kind.lower()}")

    @app.post(
        "/v1/identities/{name}/examples",
        response_model=EnrollmentOut,
        status_code=201,
        tags=["identities"],
    )
    async def add_examples(
        _: Admin,
        name: str,
        images: Annotated[list[UploadFile], File(description="one or more photos")],
        force: Annotated[bool, Form()] = False,
    ) -> dict[str, Any]:
        """Add images to an existing identity."""
        svc = service()
        exists = await svc.locked(lambda: svc.gallery.has_identity(name))
        if not exists:
            raise ApiError("not_found", f"no identity {name!r}; create it with POST /v1/identities")
        return await enroll(name, images, None, force)

    @app.delete("/v1/identities/{name}/examples/{example_id}", status_code=204, tags=["identities"])
    async def delete_example(_: Admin, name: str, example_id: int) -> Response:
        svc = service()
        await svc.locked(lambda: svc.gallery.remove_example(name, example_id))
        return Response(status_code=204)

    # ------------------------------------------------------------------------------------
    # The model, health, metrics, the page

    @app.get("/v1/model", response_model=ModelOut, tags=["service"])
    async def model(_: Reader) -> dict[str, Any]:
        svc = service()
        description = svc.recognizer.description
        stats = await svc.locked(svc.gallery.stats)
        return {
            "name": Path(str(svc.recognizer.model_dir)).name,
            "fingerprint": svc.recognizer.fingerprint,
            "input_shape": [int(v) for v in description["input_shape"]],
            "embedding_dim": svc.recognizer.embedding_dim,
            "metric": svc.recognizer.metric,
            "preprocessing": description.get("preprocessing") or {},
            "thresholds": description.get("thresholds"),
            "gallery_threshold": stats["threshold"],
            "gallery_far": stats["far"],
            "gallery": stats,
        }

    @app.get("/healthz", response_model=StatusOut, tags=["service"])
    async def healthz() -> dict[str, Any]:
        """The process answers."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=StatusOut,
        tags=["service"],
        responses={503: {"model": StatusOut}},
    )
    async def readyz() -> Any:
        """The gallery's database answers (else 503: retry later)."""
        if "service" not in state:
            return JSONResponse({"status": "starting"}, status_code=503)
        svc = state["service"]
        try:
            await run_in_threadpool(svc.gallery.store.generation)
        except Exception as err:
            detail = scrub(type(err).__name__)
            return JSONResponse(
                {"status": "database unavailable", "detail": detail}, status_code=503
            )
        return {"status": "ready"}

    @app.get("/metrics", response_class=PlainTextResponse, tags=["service"])
    async def metrics() -> Response:
        """Prometheus text format."""
        svc = service()
        identities, examples = await run_in_threadpool(svc.gallery.store.counts)
        svc.metrics.gallery_size(identities, examples)
        return Response(svc.metrics.render(), media_type=svc.metrics.content_type)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(WEB / "index.html")

    if WEB.is_dir():
        app.mount("/static", StaticFiles(directory=WEB), name="static")
    return app


def app_from_environment() -> FastAPI:
    """The app of `siamese serve` in each uvicorn worker (settings in SIAMESE_SERVE_SETTINGS)."""
    import os

    return create_app(ServiceSettings.from_json(os.environ["SIAMESE_SERVE_SETTINGS"]))
