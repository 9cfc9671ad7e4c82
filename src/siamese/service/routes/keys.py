"""API keys of the addressed gallery, for its admins: list them (never the keys themselves),
make one (shown once, only its hash is kept) and revoke one. A key opens its own gallery
only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from siamese.service import keys as api_keys
from siamese.service.dependencies import Admin, RowId, Target
from siamese.service.schemas import KeyIn, KeyPage, NewKeyOut

router = APIRouter(prefix="/keys", tags=["keys"])


@router.get("", response_model=KeyPage)
async def list_keys(_: Admin, served: Target) -> dict[str, Any]:
    """Every key of the gallery, revoked ones included, oldest first."""
    keys = await run_in_threadpool(api_keys.list_keys, served.gallery.store)
    return {"items": [k.as_dict() for k in keys], "total": len(keys)}


@router.post("", response_model=NewKeyOut, status_code=201)
async def create_key(_: Admin, served: Target, body: KeyIn) -> dict[str, Any]:
    """A new key of the gallery; the response is the only time the key is shown."""
    record, key = await run_in_threadpool(
        api_keys.create_key, served.gallery.store, body.role, body.name, body.rate_per_minute
    )
    return {**record.as_dict(), "key": key}


@router.delete("/{key_id}", status_code=204)
async def revoke_key(_: Admin, served: Target, key_id: RowId) -> Response:
    """Revoke a key: it stops working at once, in every worker."""
    await run_in_threadpool(api_keys.revoke_key, served.gallery.store, key_id)
    return Response(status_code=204)
