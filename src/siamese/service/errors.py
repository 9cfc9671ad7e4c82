"""Errors of the HTTP API: every one a JSON body `{"error": {"code", "message"}}` with a
stable code, never a traceback or a path of the server's disk."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from siamese.errors import (
    CheckpointError,
    ConflictError,
    DataError,
    NoFaceError,
    NotFoundError,
    OutputError,
    SiameseError,
)

# code → HTTP status; the codes are part of the API (documented in README and OpenAPI).
CODES: dict[str, int] = {
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "invalid_request": 400,
    "invalid_image": 422,
    "no_face": 422,
    "unavailable": 503,
    "internal": 500,
}


@dataclass
class ApiError(Exception):
    """An error answered to the client: `code` (a key of CODES) and a message."""

    code: str
    message: str

    @property
    def status(self) -> int:
        return CODES[self.code]

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": scrub(self.message)}}


# An absolute path of the server's disk (POSIX or Windows) in a message from a lower layer.
_PATH = re.compile(r"(?:(?<=\s)|(?<=^)|(?<=[(\"']))(?:/[^\s:;,'\"()]+)+|[A-Za-z]:\\[^\s:;,'\"()]+")


def scrub(message: str) -> str:
    """`message` without paths of the server's disk: an absolute path whose top folder exists
    here (/tmp/…, /home/…, C:\\…) becomes its last component; API routes (/v1/…) stay."""

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text.startswith("/"):
            top = "/" + text.split("/")[1]
            if not os.path.isdir(top):
                return text
        return text.replace("\\", "/").rsplit("/", 1)[-1]

    return _PATH.sub(replace, message)


def from_siamese_error(err: SiameseError) -> ApiError:
    """The API error for a user error raised by the library."""
    text = str(err)
    if isinstance(err, NotFoundError):
        return ApiError("not_found", text)
    if isinstance(err, ConflictError):
        return ApiError("conflict", text)
    if isinstance(err, NoFaceError):
        return ApiError("no_face", text)
    if isinstance(err, DataError):
        return ApiError("invalid_image", text)
    if isinstance(err, OutputError):  # the database refused a write (locked, full, gone)
        return ApiError("unavailable", text)
    if isinstance(err, CheckpointError):
        return ApiError("unavailable", text)
    return ApiError("invalid_request", text)
