"""What routes share, as FastAPI dependencies: the running `Service`, the gallery a route
addresses, the caller's role on it (from the API key), and uploads checked by content before
anything decodes them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, UploadFile
from fastapi import Path as PathParam

from siamese.data.image_files import DEFAULT_MAX_PIXELS, BadImageError, probe_image_bytes
from siamese.service.errors import ApiError
from siamese.service.runtime import API_KEY_HEADER, ServedGallery, Service


def current_service(request: Request) -> Service:
    """The app's `Service` (503 while it is still starting)."""
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise ApiError("unavailable", "the service is starting")
    return service


Running = Annotated[Service, Depends(current_service)]


def target_gallery(request: Request, service: Running) -> ServedGallery:
    """The gallery a route addresses: `{gallery}` in its path, else the default (404 for a
    gallery not served)."""
    return service.gallery(request.path_params.get("gallery"))


Target = Annotated[ServedGallery, Depends(target_gallery)]


def gallery_in_path(
    gallery: Annotated[
        str, PathParam(max_length=64, description="the gallery's name (`GET /v1/galleries`)")
    ],
) -> None:
    """Declares `{gallery}` for the routes included under `/v1/galleries/{gallery}`, so that
    the OpenAPI schema documents it (`target_gallery` reads it)."""


def caller_role(request: Request, service: Running, served: Target) -> str:
    """The caller's role on the addressed gallery (401 without a valid key for it when keys
    are required; 429 past the key's rate)."""
    return service.role(served, request.headers.get(API_KEY_HEADER))


def admin_role(role: Annotated[str, Depends(caller_role)]) -> str:
    """The caller's role, which must be admin (403 otherwise)."""
    if role != "admin":
        raise ApiError("forbidden", "this API key may recognise but not change the gallery")
    return role


def service_admin(request: Request, service: Running) -> str:
    """An admin of the service: an admin key of the default gallery (403 otherwise)."""
    role = service.role(service.gallery(None), request.headers.get(API_KEY_HEADER))
    if role != "admin":
        raise ApiError("forbidden", "managing galleries takes an admin key of the default gallery")
    return role


MAX_ROW = 2**62
"""Largest offset or row id a request may name (the databases' integers are 64-bit)."""
RowId = Annotated[int, PathParam(ge=1, le=MAX_ROW, description="a row's id")]

Reader = Annotated[str, Depends(caller_role)]
Admin = Annotated[str, Depends(admin_role)]
ServiceAdmin = Annotated[str, Depends(service_admin)]


async def read_image(service: Service, upload: UploadFile, field: str) -> bytes:
    """The bytes of one uploaded image, checked by content (size, format, pixel count).

    Raises:
        ApiError: payload_too_large, unsupported_media_type (not an image) or invalid_image.
    """
    limit = service.settings.max_upload_bytes
    data = await upload.read(limit + 1)
    name = f"{field} ({upload.filename or 'upload'})"
    if len(data) > limit:
        raise ApiError("payload_too_large", f"{name} is larger than the upload limit")
    try:
        probe_image_bytes(data, name, min(service.settings.max_pixels, DEFAULT_MAX_PIXELS))
    except BadImageError as err:
        code = "unsupported_media_type" if "not an image" in err.reason else "invalid_image"
        raise ApiError(code, f"{err.path}: {err.reason}") from None
    return data
