"""What every request passes through before its route: the upload size limit (refused from
the Content-Length header, before the body is read), its deadline (`--request-timeout`), and
the request metrics."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response

from siamese.service.admission import Overloaded, request_deadline
from siamese.service.error_handlers import error_response
from siamese.service.errors import ApiError
from siamese.service.settings import ServiceSettings

log = logging.getLogger("siamese.service")


RECOGNISING = re.compile(
    r"^/v1(/galleries/[^/]+)?/(identify|verify|embed|identities(/[^/]+/examples)?)$"
)
"""The POST routes that decode and embed images: what the door admits (`admission.Door`)."""


async def admitted(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """The route's response once the door admits a recognising request (refused at once,
    its body unread, when the service is full), with the request's deadline set for the
    stages (`admission`)."""
    service = getattr(request.app.state, "service", None)
    door = None
    if service is not None and request.method == "POST" and RECOGNISING.match(request.url.path):
        door = service.door
        try:
            door.admit()
        except Overloaded as err:
            service.metrics.refused.labels("overloaded").inc()
            return error_response(err)
    request_deadline.set(time.monotonic() + service.settings.request_timeout_s if service else None)
    try:
        return await call_next(request)
    except Exception:  # raised past the handlers (e.g. in a dependency's cleanup)
        log.exception("internal error")
        return error_response(ApiError("internal", "internal error"))
    finally:
        if door is not None:
            door.leave()


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
            response = await admitted(request, call_next)
        route = route_template(request)
        service = getattr(request.app.state, "service", None)
        if service is not None:
            service.metrics.observe(
                request.method, route, response.status_code, time.perf_counter() - started
            )
        return response
