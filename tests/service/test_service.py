"""The recognition service: the REST API through FastAPI's test client (the real app, its
lifespan and the gallery's SQLite file), the micro-batcher, API keys, limits and errors, and a
real `siamese serve` process on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

fastapi = pytest.importorskip("fastapi", reason="the serve extra is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from siamese.data.sources import load_dataset  # noqa: E402
from siamese.errors import ConfigError  # noqa: E402
from siamese.recognition import Gallery, Recognizer  # noqa: E402
from siamese.recognition.gallery_store import GalleryStore  # noqa: E402
from siamese.service.app import ServiceSettings, create_app  # noqa: E402
from siamese.service.batching import MicroBatcher  # noqa: E402
from siamese.service.keys import create_key, list_keys, revoke_key  # noqa: E402
from siamese.service.server import checked_settings  # noqa: E402
from tests.serve_process import ServeProcess  # noqa: E402


def _png_bytes(pixels: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels[0].numpy(), "L").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_dataset("digits")
    return data.x, data.y


@pytest.fixture
def gallery_path(tmp_path: Path, digits_model: Path) -> Path:
    path = tmp_path / "people.sqlite"
    Gallery.create(path, Recognizer.load(digits_model), far=1e-2, keep_images=True).close()
    return path


@pytest.fixture
def client(gallery_path: Path) -> Iterator[TestClient]:
    settings = ServiceSettings(gallery=str(gallery_path), require_keys=False)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _enroll(client: TestClient, name: str, images: list[bytes], **headers: str) -> object:
    files = [("images", (f"{name}{i}.png", data, "image/png")) for i, data in enumerate(images)]
    return client.post("/v1/identities", data={"name": name}, files=files, headers=headers)


def _error(response: object) -> tuple[int, str, str]:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    text = json.dumps(body)
    assert "Traceback" not in text and "/tmp/" not in text and str(Path.home()) not in text
    return response.status_code, body["error"]["code"], body["error"]["message"]  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------
# The API


def test_enrol_identify_verify_and_embed(client: TestClient, digits, digits_model: Path) -> None:
    x, y = digits
    zeros, ones = x[y == 0], x[y == 1]
    response = _enroll(client, "zero", [_png_bytes(p) for p in zeros[:3]])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["created"] and body["added"] == ["zero0.png", "zero1.png", "zero2.png"]
    assert _enroll(client, "one", [_png_bytes(ones[0])]).status_code == 201

    probe = _png_bytes(zeros[5])
    response = client.post("/v1/identify", files={"image": ("probe.png", probe, "image/png")})
    assert response.status_code == 200, response.text
    [answer] = response.json()["results"]
    # the same answer as the library's, on the same gallery
    with Gallery.open(
        client.app.state.service.settings.gallery, Recognizer.load(digits_model)
    ) as g:
        [expected] = g.identify(probe)
    assert answer["decision"] == expected.label and answer["source"] == "probe.png"
    assert answer["distance"] == pytest.approx(expected.distance, abs=1e-5)
    # the evidence: the gallery's threshold, its rule, the estimate, the write it belongs to
    assert answer["threshold"] == expected.threshold and answer["rule"] == "far"
    assert answer["generation"] == expected.decision.generation == 2
    assert answer["estimated_fpir"] == pytest.approx(expected.decision.estimated_fpir)
    assert answer["margin"] == pytest.approx(expected.margin, abs=1e-5)
    assert body["decision"]["rule"] == "far" and body["decision"]["generation"] == 1

    response = client.post(
        "/v1/verify", data={"identity": "zero"}, files={"image": ("p.png", probe, "image/png")}
    )
    assert response.status_code == 200 and response.json()["identity"] == "zero"
    pair = {"image": ("a.png", probe, "image/png"), "image2": ("b.png", probe, "image/png")}
    response = client.post("/v1/verify", files=pair)
    assert response.json()["same"] is True and response.json()["distance"] == pytest.approx(
        0, abs=1e-3
    )
    response = client.post("/v1/embed", files={"image": ("p.png", probe, "image/png")})
    embedding = response.json()
    z = Recognizer.load(digits_model).embed(probe)[0]
    assert embedding["dim"] == z.numel()
    torch.testing.assert_close(torch.tensor(embedding["embedding"]), z, atol=1e-5, rtol=0)


def test_identities_and_examples_are_resources(client: TestClient, digits) -> None:
    x, y = digits
    for digit in range(5):
        assert (
            _enroll(client, f"d{digit}", [_png_bytes(p) for p in x[y == digit][:2]]).status_code
            == 201
        )
    page = client.get("/v1/identities", params={"offset": 1, "limit": 2}).json()
    assert page["total"] == 5 and [i["name"] for i in page["items"]] == ["d1", "d2"]
    # keyset paging: the next page starts after the last name of this one
    assert page["next_after"] == "d2"
    following = client.get("/v1/identities", params={"after": "d2", "limit": 2}).json()
    assert [i["name"] for i in following["items"]] == ["d3", "d4"]
    last = client.get("/v1/identities", params={"after": "d4", "limit": 2}).json()
    assert last["items"] == [] and last["next_after"] is None
    found = client.get("/v1/identities", params={"q": "D3"}).json()
    assert found["total"] == 1 and [i["name"] for i in found["items"]] == ["d3"]
    assert client.get("/v1/identities/d3").json()["examples"] == 2
    code, kind, _ = _error(client.get("/v1/identities/nobody"))
    assert (code, kind) == (404, "not_found")
    # a second POST of the same name is a conflict: examples are added under the identity
    code, kind, message = _error(_enroll(client, "d1", [_png_bytes(x[100])]))
    assert (code, kind) == (409, "conflict") and "/examples" in message
    files = [("images", ("more.png", _png_bytes(x[y == 1][5]), "image/png"))]
    assert client.post("/v1/identities/d1/examples", files=files).status_code == 201
    examples = client.get("/v1/identities/d1/examples").json()
    assert examples["total"] == 3
    first = examples["items"][0]["id"]
    image = client.get(f"/v1/identities/d1/examples/{first}/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert client.delete(f"/v1/identities/d1/examples/{first}").status_code == 204
    assert client.get("/v1/identities/d1").json()["examples"] == 2
    assert _error(client.delete(f"/v1/identities/d1/examples/{first}"))[:2] == (404, "not_found")
    patched = client.patch("/v1/identities/d1", json={"name": "uno", "metadata": {"team": "a"}})
    assert patched.status_code == 200 and patched.json()["name"] == "uno"
    assert patched.json()["metadata"] == {"team": "a"}
    removed = client.delete("/v1/identities/uno").json()
    assert removed == {"identity": "uno", "removed_examples": 2}
    assert client.get("/v1/identities").json()["total"] == 4


def test_model_health_readiness_metrics_and_schema(client: TestClient, digits) -> None:
    x, _ = digits
    model = client.get("/v1/model").json()
    assert model["input_shape"] == [1, 8, 8] and model["gallery_far"] == 0.01
    assert model["thresholds"]["at_far"] and model["thresholds"]["fpir"]["sizes"]
    # the model runs under onnxruntime through its verified export; no server path is shown
    engine = model["engine"]
    assert engine["engine"] == "onnxruntime" and engine["max_abs_difference"] <= 1e-4
    assert engine["export_dir"].startswith("onnx-") and "/" not in engine["export_dir"]
    # the gallery's size and decision rule, as `siamese gallery stats` gives them
    gallery = model["gallery"]
    assert gallery["identities"] == 0 and gallery["rule"] == "far" and gallery["target"] == 0.01
    assert gallery["threshold"] == model["gallery_threshold"] and gallery["basis"]
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json()["status"] == "ready"
    client.post("/v1/identify", files={"image": ("p.png", _png_bytes(x[0]), "image/png")})
    text = client.get("/metrics").text
    assert 'siamese_requests_total{method="POST",route="/v1/identify",status="200"} 1.0' in text
    assert "siamese_request_seconds_bucket" in text and "siamese_batch_size_count" in text
    assert 'siamese_gallery_identities{gallery="people"} 0.0' in text
    schema = client.get("/openapi.json").json()
    for path in ("/v1/identify", "/v1/verify", "/v1/embed", "/v1/identities/{name}/examples"):
        assert path in schema["paths"]
    identify = schema["paths"]["/v1/identify"]["post"]["responses"]
    assert {"200", "401", "413", "415", "422"} <= set(identify)
    page = client.get("/")
    assert page.status_code == 200 and "Who is it?" in page.text
    assert client.get("/static/app.js").status_code == 200


# ------------------------------------------------------------------------------------------
# Bad input: each gets its 4xx, never a 500 or a traceback


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming width × height, with a tiny (truncated) body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_bad_uploads_get_their_4xx(gallery_path: Path, digits) -> None:
    x, _ = digits
    settings = ServiceSettings(
        gallery=str(gallery_path), require_keys=False, max_upload_bytes=50_000
    )
    good = _png_bytes(x[0])
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:

        def identify(data: bytes, name: str = "x.png") -> tuple[int, str, str]:
            return _error(client.post("/v1/identify", files={"image": (name, data, "image/png")}))

        assert identify(b"%PDF-1.4 not an image")[:2] == (415, "unsupported_media_type")
        assert identify(good[: len(good) // 2])[:2] == (422, "invalid_image")  # truncated
        assert identify(b"")[:2] == (422, "invalid_image")
        code, kind, message = identify(_bomb_png(30_000, 30_000))
        assert (code, kind) == (422, "invalid_image") and "pixels" in message
        assert identify(b"\0" * 60_000)[:2] == (413, "payload_too_large")
        # content decides, not the name: a PNG named .txt is read
        response = client.post("/v1/identify", files={"image": ("x.txt", good, "text/plain")})
        assert response.status_code == 200
        assert _error(client.post("/v1/identify", data={"image": "text"}))[:2] == (
            400,
            "invalid_request",
        )
        assert _error(client.post("/v1/identify?k=0", files={"image": ("x.png", good)}))[:2] == (
            400, "invalid_request",
        )  # fmt: skip
        assert _error(client.get("/v1/nothing"))[:2] == (404, "not_found")
        assert _error(client.patch("/v1/identities/x", content=b"{"))[0] == 400
        assert _error(client.post("/v1/verify", files={"image": ("x.png", good)}))[:2] == (
            400, "invalid_request",
        )  # fmt: skip


# ------------------------------------------------------------------------------------------
# API keys


def test_api_keys_roles_and_revocation(gallery_path: Path, digits) -> None:
    x, _ = digits
    store = GalleryStore.open(gallery_path)
    admin_record, admin = create_key(store, "admin", "ops")
    recognize_record, reader = create_key(store, "recognize", "door")
    rows = list_keys(store)
    assert [r.role for r in rows] == ["admin", "recognize"]
    assert all(admin not in json.dumps(r.as_dict()) for r in rows)  # only hashes are kept
    with pytest.raises(ConfigError, match="role must be one of admin, recognize"):
        create_key(store, "root")
    store.close()
    settings = checked_settings(ServiceSettings(gallery=str(gallery_path)), "0.0.0.0")
    assert settings.require_keys
    image = {"image": ("p.png", _png_bytes(x[0]), "image/png")}
    with TestClient(create_app(settings)) as client:
        assert _error(client.post("/v1/identify", files=image))[:2] == (401, "unauthorized")
        bad = {"X-API-Key": "sk_wrong"}
        assert _error(client.post("/v1/identify", files=image, headers=bad))[:2] == (
            401,
            "unauthorized",
        )
        ok = client.post("/v1/identify", files=image, headers={"X-API-Key": reader})
        assert ok.status_code == 200
        code, kind, _ = _error(_enroll(client, "ada", [_png_bytes(x[1])], **{"X-API-Key": reader}))
        assert (code, kind) == (403, "forbidden")
        assert _enroll(client, "ada", [_png_bytes(x[1])], **{"X-API-Key": admin}).status_code == 201
        assert client.get("/healthz").status_code == 200  # probes need no key
        store = GalleryStore.open(gallery_path)
        revoke_key(store, recognize_record.id)
        store.close()
        revoked = client.post("/v1/identify", files=image, headers={"X-API-Key": reader})
        assert _error(revoked)[:2] == (401, "unauthorized")
    del admin_record


def test_without_keys_the_server_serves_loopback_only(gallery_path: Path) -> None:
    settings = ServiceSettings(gallery=str(gallery_path))
    assert checked_settings(settings, "127.0.0.1").require_keys is False
    with pytest.raises(ConfigError, match=r"no API key exists .*siamese serve keys create"):
        checked_settings(settings, "0.0.0.0")


# ------------------------------------------------------------------------------------------
# Micro-batching


def test_concurrent_requests_share_forward_passes_and_get_their_own_rows() -> None:
    calls: list[int] = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        time.sleep(0.02)
        return x.float().sum(dim=(1, 2, 3), keepdim=False)[:, None] * torch.ones(1, 4)

    async def scenario() -> list[torch.Tensor]:
        batcher = MicroBatcher(forward, max_batch=8, window_s=0.01)
        batcher.start()
        inputs = [torch.full((1, 1, 2, 2), float(i)) for i in range(20)]
        outputs = await asyncio.gather(*(batcher(x) for x in inputs))
        await batcher.stop()
        return outputs

    outputs = asyncio.run(scenario())
    for i, out in enumerate(outputs):
        assert out.shape == (1, 4) and torch.all(out == 4.0 * i)
    assert sum(calls) == 20 and max(calls) <= 8 and len(calls) < 20


def test_a_failing_forward_fails_every_request_of_its_batch_and_no_other() -> None:
    def forward(x: torch.Tensor) -> torch.Tensor:
        if (x < 0).any():
            raise ValueError("bad batch")
        return x.flatten(1).float()

    async def scenario() -> tuple[list[object], torch.Tensor]:
        batcher = MicroBatcher(forward, max_batch=4, window_s=0.01)
        batcher.start()
        results = await asyncio.gather(
            batcher(torch.ones(1, 2)), batcher(-torch.ones(1, 2)), return_exceptions=True
        )
        after = await batcher(torch.ones(1, 2))
        await batcher.stop()
        return results, after

    results, after = asyncio.run(scenario())
    assert all(isinstance(r, ValueError) for r in results)  # one batch: both failed
    assert torch.equal(after, torch.ones(1, 2))  # the batcher lives on


# ------------------------------------------------------------------------------------------
# A real server


@pytest.mark.slow
def test_siamese_serve_answers_on_loopback_and_stops_on_sigterm(
    gallery_path: Path, digits, tmp_path: Path
) -> None:
    import httpx

    x, _ = digits
    server = ServeProcess(gallery_path, tmp_path / "server.log").start()
    base = server.base
    try:
        files = [("images", ("a.png", _png_bytes(x[0]), "image/png"))]
        assert (
            httpx.post(f"{base}/v1/identities", data={"name": "ada"}, files=files).status_code
            == 201
        )
        answer = httpx.post(f"{base}/v1/identify", files={"image": ("p.png", _png_bytes(x[0]))})
        assert answer.json()["results"][0]["decision"] == "ada"
    finally:
        status = server.stop()
    output = server.log()
    # a graceful stop: the app shut down, then uvicorn re-raised the signal as its exit status
    assert status in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output and "Traceback" not in output


@pytest.mark.slow
def test_a_server_killed_during_enrolments_keeps_every_acknowledged_one(
    gallery_path: Path, digits, tmp_path: Path
) -> None:
    """SIGKILL while two clients enroll, then a restart on the same file: the gallery passes
    SQLite's integrity check and holds every enrollment that was answered 201."""
    import sqlite3
    import threading

    import httpx

    x, _ = digits
    acknowledged: list[str] = []

    def enroll(base: str, worker: int, stop: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            name = f"w{worker}-{n}"
            files = [("images", ("a.png", _png_bytes(x[(worker * 500 + n) % len(x)]), "image/png"))]
            try:
                response = httpx.post(
                    f"{base}/v1/identities", data={"name": name, "force": "true"}, files=files
                )
            except httpx.HTTPError:
                return  # the server is gone
            if response.status_code == 201:
                acknowledged.append(name)
            n += 1

    server = ServeProcess(gallery_path, tmp_path / "server.log").start()
    stop = threading.Event()
    clients = [threading.Thread(target=enroll, args=(server.base, w, stop)) for w in range(2)]
    for c in clients:
        c.start()
    time.sleep(3)
    server.kill()  # SIGKILL: no shutdown at all
    stop.set()
    for c in clients:
        c.join(timeout=30)
    assert len(acknowledged) > 5
    with sqlite3.connect(gallery_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    server.start()
    try:
        page = httpx.get(f"{server.base}/v1/identities", params={"limit": 500}).json()
        names = {i["name"] for i in page["items"]}
    finally:
        server.stop()
    assert set(acknowledged) <= names
    assert len(names - set(acknowledged)) <= 2  # at most one in flight per client


@pytest.mark.slow
def test_several_workers_share_the_gallery(gallery_path: Path, digits, tmp_path: Path) -> None:
    """`--workers 2`: two processes on one SQLite gallery; what one enrolls, every answer finds
    (the kernel spreads connections over the workers)."""
    import httpx

    x, y = digits
    server = ServeProcess(gallery_path, tmp_path / "server.log", "--workers", "2").start()
    base = server.base
    try:
        time.sleep(2)  # both workers up
        for digit in range(4):
            files = [("images", (f"{digit}.png", _png_bytes(x[y == digit][0]), "image/png"))]
            with httpx.Client() as client:  # a new connection each: any worker may take it
                response = client.post(
                    f"{base}/v1/identities", data={"name": f"d{digit}"}, files=files
                )
            assert response.status_code == 201, response.text
            for _ in range(3):
                with httpx.Client() as client:
                    answer = client.post(
                        f"{base}/v1/identify",
                        files={"image": ("p.png", _png_bytes(x[y == digit][0]), "image/png")},
                    ).json()["results"][0]
                assert answer["identity"] == f"d{digit}"
        # /metrics sums both workers, whichever answers the scrape
        pattern = re.compile(
            r'siamese_requests_total\{method="POST",route="/v1/identify",status="200"\} (\S+)'
        )
        for _ in range(4):
            with httpx.Client() as client:
                scraped = client.get(f"{base}/metrics").text
            assert float(pattern.search(scraped).group(1)) == 12.0, scraped
            assert 'siamese_gallery_identities{gallery="people"} 4.0' in scraped
    finally:
        server.stop()
    text = server.log()
    assert text.count("Application startup complete") == 2, text[-3000:]
    assert "Traceback" not in text


def test_numbers_beyond_the_databases_integers_are_a_400_not_a_500(client: TestClient) -> None:
    """Found by fuzzing: an offset or id past 64 bits overflowed SQLite's integers."""
    huge = 2902534057820829494769120324526014464
    for path in (
        f"/v1/identities?offset={huge}",
        f"/v1/identities/someone/examples?offset={huge}",
        f"/v1/identities/someone/examples/{huge}/image",
    ):
        code, kind, _ = _error(client.get(path))
        assert (code, kind) == (400, "invalid_request"), path
    for path in (f"/v1/identities/someone/examples/{huge}", f"/v1/keys/{huge}"):
        assert _error(client.delete(path))[:2] == (400, "invalid_request"), path
