"""The galleries one service serves: list them (each caller sees those its key opens; an
admin of the default gallery sees all), and, when the service serves a folder of galleries,
create and delete them (an admin key of the default gallery)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from siamese.service.dependencies import Running, ServiceAdmin
from siamese.service.errors import ApiError
from siamese.service.runtime import API_KEY_HEADER, ServedGallery, Service
from siamese.service.schemas import GalleryIn, GalleryOut, GalleryPage

router = APIRouter(prefix="/v1/galleries", tags=["galleries"])


def _described(service: Service, served: ServedGallery) -> dict[str, Any]:
    identities, examples = served.gallery.store.counts()
    return {
        "name": served.name,
        "default": served.name == service.default,
        "identities": identities,
        "examples": examples,
        "model": served.recognizer.fingerprint,
        "threshold": served.gallery.threshold,
        "far": served.gallery.far,
    }


@router.get("", response_model=GalleryPage)
async def list_galleries(request: Request, service: Running) -> dict[str, Any]:
    """The galleries the caller's key opens (all of them for an admin of the default
    gallery, or on a loopback service without keys)."""
    key = request.headers.get(API_KEY_HEADER)
    items = []
    for name in service.gallery_names():
        try:
            served = service.gallery(name)
            service.role(served, key, spend=not items)  # one request: one of its rate
        except ApiError as err:
            if err.code == "rate_limited":
                raise
            continue  # a gallery this key does not open, or one deleted meanwhile
        items.append(await run_in_threadpool(_described, service, served))
    if not items:
        raise ApiError("unauthorized", f"send an API key in the {API_KEY_HEADER} header")
    return {"items": items, "total": len(items)}


@router.post("", response_model=GalleryOut, status_code=201)
async def create_gallery(_: ServiceAdmin, service: Running, body: GalleryIn) -> dict[str, Any]:
    """A new, empty gallery in the served folder, with the model of gallery `like` (default:
    the default gallery's); its keys are made with `siamese serve keys create` or
    `POST /v1/galleries/{name}/keys`."""
    served = await run_in_threadpool(
        service.create_gallery, body.name, body.like, body.far, body.keep_images
    )
    return await run_in_threadpool(_described, service, served)


@router.delete("/{name}", status_code=204)
async def delete_gallery(_: ServiceAdmin, service: Running, name: str) -> Response:
    """Delete a gallery of the served folder with everything it holds (not the default)."""
    await run_in_threadpool(service.delete_gallery, name)
    return Response(status_code=204)
