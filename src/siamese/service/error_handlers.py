"""Every failure as the API's JSON error body (`errors.ApiError`): the app's exception
handlers, and the responses each route documents in the OpenAPI schema."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from siamese.errors import SiameseError
from siamese.service.errors import ApiError, from_siamese_error, scrub
from siamese.service.schemas import ErrorBody

log = logging.getLogger("siamese.service")

DOCUMENTED_ERRORS = {
    code: {"model": ErrorBody, "description": code}
    for code in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)
}
"""The error responses every route may give, for the OpenAPI schema."""


def error_response(error: ApiError) -> JSONResponse:
    """The JSON error body, with Retry-After where the error says when to come back (a full
    stage, a timeout, a spent rate limit)."""
    response = JSONResponse(error.body(), status_code=error.status)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(int(retry_after))
    return response


async def _api_error(_: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, ApiError)
    return error_response(err)


async def _siamese_error(_: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, SiameseError)
    return error_response(from_siamese_error(err))


async def _database_down(_: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, sa.exc.DBAPIError)
    log.warning("database error: %s", type(err.orig).__name__ if err.orig else err)
    reachable = not isinstance(err, sa.exc.OperationalError)
    response = error_response(
        ApiError(
            "unavailable",
            "the gallery's database refused the request; retry shortly"
            if reachable
            else "cannot connect to the gallery's database; retry shortly",
        )
    )
    response.headers["Retry-After"] = "1"
    return response


async def _invalid(_: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
        for e in err.errors()[:5]
    )
    return error_response(ApiError("invalid_request", problems or "invalid request"))


async def _http(_: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, StarletteHTTPException)
    code = {404: "not_found", 405: "invalid_request", 413: "payload_too_large"}.get(
        err.status_code, "invalid_request"
    )
    return JSONResponse(
        {"error": {"code": code, "message": scrub(str(err.detail))}},
        status_code=err.status_code,
    )


async def _internal(_: Request, err: Exception) -> JSONResponse:
    log.exception("internal error")  # the traceback stays in the server's log
    return error_response(ApiError("internal", "internal error; the server's log has it"))


def install_error_handlers(app: FastAPI) -> None:
    """Answer every exception a route raises with the JSON error body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(SiameseError, _siamese_error)
    app.add_exception_handler(sa.exc.DBAPIError, _database_down)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _internal)
