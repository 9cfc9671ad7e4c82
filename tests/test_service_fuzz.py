"""Property-based fuzzing of the service against its own served OpenAPI schema (schemathesis):
no 5xx, every response's status, content type and body as the schema documents them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_undocumented_response(
    tmp_path: Path, digits_model: Path
) -> None:
    import httpx

    schemathesis = shutil.which("st", path=str(Path(sys.executable).parent))
    if schemathesis is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI must install schemathesis (the dev lock has it)")
        pytest.skip("schemathesis is not installed")
    from siamese.data.sources import load_dataset
    from siamese.recognition import Gallery, Recognizer
    from siamese.recognition.gallery_store import GalleryStore
    from siamese.service.keys import create_key

    gallery = tmp_path / "people.sqlite"
    data = load_dataset("digits")
    with Gallery.create(gallery, Recognizer.load(digits_model), keep_images=True) as g:
        for digit in range(3):
            g.enroll(f"d{digit}", list(data.x[data.y == digit][:2]))
    store = GalleryStore.open(gallery)
    _, key = create_key(store, "admin")
    store.close()
    port = _free_port()
    log_path = tmp_path / "server.log"  # a file: a pipe nobody reads fills and stalls the server
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "siamese", "serve", str(gallery), "--port", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not become ready")
        done = subprocess.run(
            [
                schemathesis, "run", f"{base}/openapi.json",
                "--header", f"X-API-Key: {key}",
                "--checks", "not_a_server_error,status_code_conformance,"
                "content_type_conformance,response_schema_conformance",
                "--max-examples", "10", "--seed", "1", "--max-time", "90",
                "--workers", "1", "--request-timeout", "30", "--warnings", "off",
            ],
            capture_output=True,
            text=True,
            timeout=400,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    log = log_path.read_text(errors="replace")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Traceback" not in log, log[-4000:]
