"""A real PostgreSQL server for the tests: a throwaway cluster (`initdb`) in a temporary
folder, run as the `postgres` user on a free loopback port, stopped and deleted at the end of
the session. `postgres.database()` makes a fresh empty database and returns its URL;
`postgres.stop()` / `postgres.start()` restart the server (fault tests).

Needs PostgreSQL's server binaries (`pg_config --bindir`; `.ci/run` installs the Debian package
when they are missing); without them the tests that use it skip, except under CI, where that
is an error.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.serve_process import free_port


def _bindir() -> Path | None:
    """`pg_config --bindir`, else the newest /usr/lib/postgresql/N/bin (Debian's layout)."""
    candidates = []
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        candidates.append(Path(out.stdout.strip()))
    except (OSError, subprocess.CalledProcessError):
        pass
    candidates += (
        sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name),
            reverse=True,
        )
        if Path("/usr/lib/postgresql").is_dir()
        else []
    )
    for path in candidates:
        if (path / "initdb").is_file() and (path / "postgres").is_file():
            return path
    return None


def _as_postgres(argv: list[str]) -> list[str]:
    """Run as the postgres user when this process is root (initdb refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@dataclass
class Postgres:
    bindir: Path
    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.root / "data"

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self.root.parent.chmod(0o711)  # a private temp folder: let postgres through
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                 "--no-sync", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip

    def start(self) -> None:
        self.process = subprocess.Popen(
            _as_postgres(
                [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-k", str(self.root), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                 "-c", "max_connections=200"]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                if self._query("SELECT 1") is not None:
                    return
            except OSError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}")
            time.sleep(0.2)
        raise RuntimeError("postgres did not start within 60 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # fast shutdown (clients are cut off), through pg_ctl: signals to runuser are not
            # all passed on to the server
            subprocess.run(
                _as_postgres(
                    [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"]
                ),
                capture_output=True,
                timeout=60,
            )
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def _query(self, sql: str) -> object:
        import psycopg

        try:
            with psycopg.connect(
                host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                autocommit=True, connect_timeout=2,
            ) as conn:  # fmt: skip
                cursor = conn.execute(sql)
                return cursor.fetchall() if cursor.description else []
        except psycopg.OperationalError:
            return None

    def database(self) -> str:
        """A new empty database: its SQLAlchemy URL."""
        name = f"test_{next(self._names)}"
        if self._query(f"CREATE DATABASE {name}") is None:
            raise RuntimeError("could not create a database")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    bindir = _bindir()
    try:
        import psycopg  # noqa: F401
    except ImportError:
        bindir = None
    if bindir is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI needs PostgreSQL's server and psycopg (.ci/run installs them)")
        pytest.skip("PostgreSQL's server binaries or psycopg are not installed")
    root = Path(tempfile.mkdtemp(prefix="siamese-pg-"))
    server = Postgres(bindir, root / "cluster")
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
