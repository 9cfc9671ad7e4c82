"""What every request passes through before its route: the upload size limit (refused from
the Content-Length header, before the body is read), its deadline (`--request-timeout`), and
the request metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response

from siamese.service.admission import request_deadline
from siamese.service.error_handlers import error_response
from siamese.service.errors import ApiError
from siamese.service.settings import ServiceSettings

log = logging.getLogger("siamese.service")


SERVICE_PATHS = ("/v1/galleries", "/healthz", "/readyz", "/metrics", "/static")


def route_template(request: Request) -> str:
    """The route a request matched, as a template (`/v1/galleries/{gallery}/identify`), so
    that metrics have one series per route, not per URL. A gallery's routes are included
    under two prefixes (`/v1` and `/v1/galleries/{gallery}`) and FastAPI reports the route
    without them: the prefix is read off the URL."""
    matched = request.scope.get("route")
    template = getattr(matched, "path", None)
    if template is None:
        return "unmatched"
    if template == "/" or template.startswith(SERVICE_PATHS):
        return str(template)
    if template.startswith("/v1/"):  # FastAPI versions that report the full path
        return str(template)
    inside = request.url.path.startswith("/v1/galleries/")
    return ("/v1/galleries/{gallery}" if inside else "/v1") + str(template)


def install_middleware(app: FastAPI, settings: ServiceSettings) -> None:
    """The size limit and the metrics of every request."""

    @app.middleware("http")
    async def limits_and_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_upload_bytes:
            response: Response = error_response(
                ApiError(
                    "payload_too_large",
                    f"the request is {int(length):,} bytes; the limit is "
                    f"{settings.max_upload_bytes:,} (--max-upload-mb)",
                )
            )
        else:
            # stages refuse to start work for a request past its deadline (`admission`)
            request_deadline.set(time.monotonic() + settings.request_timeout_s)
            try:
                response = await call_next(request)
            except Exception:  # raised past the handlers (e.g. in a dependency's cleanup)
                log.exception("internal error")
                response = error_response(ApiError("internal", "internal error"))
        route = route_template(request)
        service = getattr(request.app.state, "service", None)
        if service is not None:
            service.metrics.observe(
                request.method, route, response.status_code, time.perf_counter() - started
            )
        return response
