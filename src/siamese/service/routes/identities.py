"""The addressed gallery's identities and their examples: list, look up, enroll, add photos,
rename, set metadata, remove (changes need an admin key)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from siamese.data.image_files import probe_image_bytes
from siamese.service.dependencies import (
    MAX_ROW,
    Admin,
    Reader,
    RowId,
    Running,
    Target,
    read_image,
)
from siamese.service.errors import ApiError
from siamese.service.runtime import ServedGallery, Service
from siamese.service.schemas import (
    EnrollmentOut,
    ExamplePage,
    IdentityOut,
    IdentityPage,
    IdentityPatch,
    RemovedOut,
)

MAX_PAGE = 500
"""Most items one page lists."""

router = APIRouter(prefix="/identities", tags=["identities"])

Offset = Annotated[int, Query(ge=0, le=MAX_ROW)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


@router.get("", response_model=IdentityPage)
async def list_identities(
    _: Reader,
    served: Target,
    offset: Offset = 0,
    limit: Limit = 100,
    after: Annotated[
        str | None,
        Query(
            max_length=512,
            description="names after this one (keyset paging: pass the previous page's "
            "`next_after`; as fast deep into a large gallery as at its start)",
        ),
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=512, description="names containing this, ignoring case"),
    ] = None,
) -> dict[str, Any]:
    """The enrolled identities, by name, a page at a time (read by the database)."""
    page, total = await run_in_threadpool(
        served.gallery.identity_page, offset, limit, after, q or None
    )
    return {
        "items": [i.as_dict() | {"name": i.name} for i in page],
        "total": total,
        "offset": offset,
        "limit": limit,
        "next_after": page[-1].name if len(page) == limit else None,
    }


async def _enroll(
    service: Service,
    served: ServedGallery,
    name: str,
    images: list[UploadFile],
    metadata: str | None,
    force: bool,
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
    data = [await read_image(service, f, f"images[{i}]") for i, f in enumerate(images)]
    names = [f.filename or f"image {i + 1}" for i, f in enumerate(images)]
    # decoding, detection and the model outside the gallery's lock: only the write waits
    read = await service.read_images(served, list(data), names)
    result = await served.locked(
        lambda: served.gallery.enroll(name, read, metadata=meta, force=force)
    )
    return result.as_dict()


@router.post("", response_model=EnrollmentOut, status_code=201)
async def create_identity(
    _: Admin,
    service: Running,
    served: Target,
    name: Annotated[str, Form(min_length=1, max_length=512)],
    images: Annotated[list[UploadFile], File(description="one or more photos")],
    metadata: Annotated[str | None, Form(description="a JSON object")] = None,
    force: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    """Enroll a new identity from one or more images."""
    exists = await served.locked(lambda: served.gallery.has_identity(name))
    if exists:
        raise ApiError(
            "conflict",
            f"identity {name!r} exists; add images with POST /v1/identities/{{name}}/examples",
        )
    return await _enroll(service, served, name, images, metadata, force)


@router.get("/{name}", response_model=IdentityOut)
async def get_identity(_: Reader, served: Target, name: str) -> dict[str, Any]:
    info = await run_in_threadpool(served.gallery.identity, name)
    return info.as_dict() | {"name": info.name}


@router.patch("/{name}", response_model=IdentityOut)
async def patch_identity(
    _: Admin, served: Target, name: str, patch: IdentityPatch
) -> dict[str, Any]:
    """Rename (merging into an existing identity of the new name) and/or set metadata."""
    gallery = served.gallery

    def change() -> Any:
        current = name
        if patch.metadata is not None:
            gallery.set_metadata(current, patch.metadata)
        if patch.name is not None and patch.name != current:
            gallery.rename(current, patch.name)
            current = patch.name
        return gallery.identity(current)

    info = await served.locked(change)
    return info.as_dict() | {"name": info.name}


@router.delete("/{name}", response_model=RemovedOut)
async def delete_identity(_: Admin, served: Target, name: str) -> dict[str, Any]:
    removed = await served.locked(lambda: served.gallery.remove(name))
    return {"identity": name, "removed_examples": removed}


@router.get("/{name}/examples", response_model=ExamplePage)
async def list_examples(
    _: Reader, served: Target, name: str, offset: Offset = 0, limit: Limit = 100
) -> dict[str, Any]:
    page, total = await run_in_threadpool(served.gallery.example_page, name, offset, limit)
    return {
        "items": [
            {"id": r.id, "source": r.source, "added_at": r.added_at, "sha256": r.sha256}
            for r in page
        ],
        "total": total,
        "offset": offset,
        "limit": limit,
    }


@router.get(
    "/{name}/examples/{example_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}, "description": "the enrolled image"}},
)
async def example_image(_: Reader, served: Target, name: str, example_id: RowId) -> Response:
    """An enrolled image (galleries created with --keep-images)."""
    data = await served.locked(lambda: served.gallery.example_image(name, example_id))
    kind = await run_in_threadpool(probe_image_bytes, data, "stored image")
    return Response(data, media_type=f"image/{kind.lower()}")


@router.post("/{name}/examples", response_model=EnrollmentOut, status_code=201)
async def add_examples(
    _: Admin,
    service: Running,
    served: Target,
    name: str,
    images: Annotated[list[UploadFile], File(description="one or more photos")],
    force: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    """Add images to an existing identity."""
    exists = await served.locked(lambda: served.gallery.has_identity(name))
    if not exists:
        raise ApiError("not_found", f"no identity {name!r}; create it with POST /v1/identities")
    return await _enroll(service, served, name, images, None, force)


@router.delete("/{name}/examples/{example_id}", status_code=204)
async def delete_example(_: Admin, served: Target, name: str, example_id: RowId) -> Response:
    await served.locked(lambda: served.gallery.remove_example(name, example_id))
    return Response(status_code=204)
