"""Property-based fuzzing of the service against its own served OpenAPI schema (schemathesis):
no 5xx, every response's status, content type and body as the schema documents them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve_process import ServeProcess

pytest.importorskip("fastapi", reason="the serve extra is not installed")


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_undocumented_response(
    tmp_path: Path, digits_model: Path
) -> None:
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
    server = ServeProcess(gallery, tmp_path / "server.log").start()
    base = server.base
    try:
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
        server.stop()
    log = server.log()
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Traceback" not in log, log[-4000:]
