"""The web page at `/` and its files under `/static` (plain HTML, CSS and JS in `web/`)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB = Path(__file__).resolve().parent.parent / "web"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def page() -> FileResponse:
    return FileResponse(WEB / "index.html")


def mount_page(app: FastAPI) -> None:
    """The page's route and its static files."""
    app.include_router(router)
    if WEB.is_dir():
        app.mount("/static", StaticFiles(directory=WEB), name="static")
