"""A real HTTP server on 127.0.0.1 for download tests; its misbehaviour is chosen by path.

`server.url(kind, name)` serves `server.files[name]` as: files (normally), missing (404),
reset (closes without answering), slow (waits before answering), corrupt (first byte
flipped), nolength (no Content-Length), cut (half the announced bytes, then closes), stall
(half, then waits).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Server:
    """What the handler serves and what it saw; `url(kind, name)` addresses a behaviour."""

    port: int
    files: dict[str, bytes] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    user_agents: list[str] = field(default_factory=list)
    # Set at teardown so that slow handlers stop waiting instead of outliving the test.
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, kind: str, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{kind}/{name}"


class _Handler(BaseHTTPRequestHandler):
    server: _QuietServer

    def do_GET(self) -> None:
        state = self.server.state
        state.requests[self.path] += 1
        state.user_agents.append(self.headers.get("User-Agent", ""))
        _, kind, name = self.path.split("/", 2)
        body = state.files.get(name)
        if kind == "missing" or body is None:
            self.send_error(404)
            return
        if kind == "reset":
            return  # close without any response
        if kind == "slow":
            state.release.wait(5)
        if kind == "corrupt":
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        self.send_response(200)
        if kind != "nolength":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if kind in ("cut", "stall"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if kind == "stall":
                state.release.wait(5)
            return  # HTTP/1.0: returning closes the connection
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    state: Server

    def handle_error(self, request: object, client_address: object) -> None:
        # Writes to clients that already gave up are expected here.
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    # A proxy from the environment must never see these requests.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    state = Server(port=httpd.server_address[1])
    httpd.state = state
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)
