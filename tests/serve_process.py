"""A real `siamese serve` process for tests and benchmarks: a free loopback port, its output in
a log file (an unread pipe fills up and stalls a busy server), ready when /readyz says so."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """`siamese serve GALLERY [extra...]`; `start()` waits until it is ready."""

    def __init__(self, gallery: Path | str, log_path: Path, *extra: str) -> None:
        self.gallery, self.log_path, self.extra = str(gallery), Path(log_path), extra
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> ServeProcess:
        import httpx

        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "siamese", "serve", self.gallery, "--port",
                 str(self.port), *self.extra],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"the server did not become ready:\n{self.log()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the server and wait for it; its exit status."""
        if self.process is None:
            return 0
        self.process.send_signal(sig)
        status = self.process.wait(timeout=60)
        self.process = None
        return status

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind."""
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
