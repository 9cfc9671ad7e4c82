"""Fair and bounded service: stages serve in arrival order and refuse at once when full (503
with Retry-After), requests past their deadline are refused, API keys are rate limited (429
with Retry-After), and galleries of schema 2 gain per-key rates when opened."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

pytest.importorskip("fastapi", reason="the serve extra is not installed")
from fastapi.testclient import TestClient

from siamese.recognition.gallery_store import SCHEMA_VERSION, GalleryStore
from siamese.service.admission import (
    Door,
    Overloaded,
    Stage,
    TimedOut,
    request_deadline,
)
from siamese.service.app import ServiceSettings, create_app
from siamese.service.keys import create_key, list_keys, role_of
from siamese.service.rate_limits import RateLimited, RateLimits
from tests.service.test_service import _enroll, _error, _png_bytes, digits, gallery_path  # noqa: F401

# ------------------------------------------------------------------------------------------
# Stages


def test_a_stage_serves_in_arrival_order_and_refuses_beyond_its_queue() -> None:
    """20 requests arrive 1 ms apart at a one-thread stage: the ones admitted start in the
    order they arrived, and those beyond the bound are refused at once, not queued."""

    async def scenario() -> tuple[list[int], list[int], list[float]]:
        stage = Stage("gallery", parallelism=1, max_wait_s=10.0, max_inside=8)
        pool = ThreadPoolExecutor(max_workers=1)
        started: list[int] = []
        refused: list[int] = []
        refusal_seconds: list[float] = []
        gate = threading.Event()

        def work(i: int) -> int:
            gate.wait(5)  # the first holds the thread until every request has arrived
            started.append(i)
            time.sleep(0.002)
            return i

        async def request(i: int) -> None:
            await asyncio.sleep(0.001 * i)
            t = time.perf_counter()
            try:
                assert await stage.run(pool, work, i) == i
            except Overloaded as err:
                refusal_seconds.append(time.perf_counter() - t)
                assert err.status == 503 and err.retry_after >= 1
                refused.append(i)

        async def release() -> None:
            await asyncio.sleep(0.05)
            gate.set()

        await asyncio.gather(*(request(i) for i in range(20)), release())
        pool.shutdown()
        assert stage.inside == 0 and stage.refused == len(refused)
        return started, refused, refusal_seconds

    started, refused, refusal_seconds = asyncio.run(scenario())
    assert started == list(range(8)) and refused == list(range(8, 20))
    assert max(refusal_seconds) < 0.05  # answered at once, not after waiting


def test_a_stage_refuses_by_its_predicted_wait_and_learns_its_speed() -> None:
    stage = Stage("prepare", parallelism=2, max_wait_s=0.5, max_inside=100, first_estimate_s=0.1)
    for _ in range(10):  # 10 inside / 2 threads × 0.1 s = 0.5 s: still admitted
        stage.admit()
    stage.admit()  # the 11th is predicted 0.5 s (10 ahead), not more
    with pytest.raises(Overloaded, match=r"at capacity \(11 requests waiting to prepare") as err:
        stage.admit()  # 11 ahead: 0.55 s
    assert err.value.retry_after == 1
    for _ in range(11):
        stage.leave(0.3)  # slower than assumed: the mean moves toward 0.3 s
    assert 0.25 < stage.seconds_per_request < 0.3 and stage.inside == 0
    with pytest.raises(Overloaded):
        for _ in range(5):
            stage.admit()  # 4 ahead × 0.28 s / 2 > 0.5 s: the 5th is refused
    assert stage.inside == 4


def test_work_that_fails_leaves_the_stage_and_a_passed_deadline_is_refused() -> None:
    async def scenario() -> None:
        stage = Stage("gallery", parallelism=1, max_wait_s=1.0, max_inside=4)
        pool = ThreadPoolExecutor(max_workers=1)

        def broken() -> None:
            raise ValueError("the database said no")

        with pytest.raises(ValueError):
            await stage.run(pool, broken)
        assert stage.inside == 0
        request_deadline.set(time.monotonic() - 1)
        with pytest.raises(TimedOut, match="waited past its timeout before it could gallery"):
            await stage.run(pool, lambda: 1)
        assert stage.inside == 0 and stage.refused == 1
        pool.shutdown()

    asyncio.run(scenario())


def test_the_door_admits_by_the_rate_requests_are_answered() -> None:
    now = [0.0]
    door = Door(max_wait_s=0.5, max_inside=50, window_s=3.0, min_answers=10, clock=lambda: now[0])
    for _ in range(20):  # starting: no rate known, only max_inside bounds it
        door.admit()
    assert door.predicted_wait_s() == 0.0
    for _ in range(20):  # 20 answered over the last 2 s of a 3 s window: 6.7 a second
        now[0] += 0.1
        door.leave()
    assert door.answers_per_second() == pytest.approx(20 / 3)
    for _ in range(3):  # 3 inside / 6.7 a second = 0.45 s: admitted
        door.admit()
    door.admit()  # a 4th: it was predicted 0.45 s when it came
    with pytest.raises(Overloaded, match=r"4 requests in progress") as err:
        door.admit()  # 4 / 6.7 = 0.6 s > 0.5 s
    assert err.value.retry_after == 1 and door.refused == 1 and door.inside == 4
    now[0] += 10  # the window empties: no rate, admitted again
    door.admit()
    full = Door(max_wait_s=9.0, max_inside=2)
    full.admit()
    full.admit()
    with pytest.raises(Overloaded):
        full.admit()


# ------------------------------------------------------------------------------------------
# Rate limits


def test_a_key_bursts_ten_seconds_of_its_rate_then_waits_for_it() -> None:
    now = [100.0]
    limits = RateLimits(clock=lambda: now[0])
    for _ in range(20):  # 120 a minute = 2 a second: a burst of 20
        limits.take(1, 120)
    with pytest.raises(RateLimited, match="120 requests a minute") as err:
        limits.take(1, 120)
    assert err.value.status == 429 and err.value.retry_after == 1
    limits.take(2, 120)  # another key has its own bucket
    now[0] += 0.5  # one request's worth later
    limits.take(1, 120)
    with pytest.raises(RateLimited):
        limits.take(1, 120)
    for _ in range(1000):
        limits.take(3, 0)  # 0: unlimited
    slow = RateLimits(clock=lambda: now[0])
    slow.take(4, 3)  # 3 a minute: a burst of one, then 20 s to the next
    with pytest.raises(RateLimited) as err:
        slow.take(4, 3)
    assert err.value.retry_after == 20


# ------------------------------------------------------------------------------------------
# Through HTTP


def test_over_its_rate_a_key_gets_429_with_retry_after(gallery_path: Path, digits) -> None:  # noqa: F811
    store = GalleryStore.open(gallery_path)
    _, own_rate = create_key(store, "admin", "limited", rate_per_minute=6)
    _, default_rate = create_key(store, "recognize", "default")
    _, unlimited = create_key(store, "recognize", "unlimited", rate_per_minute=0)
    assert [k.rate_per_minute for k in list_keys(store)] == [6, None, 0]
    store.close()
    settings = ServiceSettings(gallery=str(gallery_path), rate_per_minute=2)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/model", headers={"X-API-Key": own_rate}).status_code == 200
        response = client.get("/v1/model", headers={"X-API-Key": own_rate})
        code, kind, message = _error(response)
        assert (code, kind) == (429, "rate_limited") and "6 requests a minute" in message
        assert response.headers["Retry-After"] == "10"
        # the service's --rate-limit for a key without its own: 2 a minute, a burst of 1
        assert client.get("/v1/model", headers={"X-API-Key": default_rate}).status_code == 200
        assert client.get("/v1/model", headers={"X-API-Key": default_rate}).status_code == 429
        for _ in range(5):
            assert client.get("/v1/model", headers={"X-API-Key": unlimited}).status_code == 200
        metrics = client.get("/metrics", headers={"X-API-Key": unlimited}).text
        assert 'siamese_refused_total{reason="rate_limit"} 2.0' in metrics


def test_a_full_stage_answers_503_with_retry_after_at_once(gallery_path: Path, digits) -> None:  # noqa: F811
    x, _ = digits
    settings = ServiceSettings(gallery=str(gallery_path), require_keys=False, max_queue=2)
    with TestClient(create_app(settings)) as client:
        assert _enroll(client, "zero", [_png_bytes(x[0])]).status_code == 201
        prepare = client.app.state.service.prepare_stage
        prepare.inside = 2  # two requests already decoding: the stage is full
        started = time.perf_counter()
        files = {"image": ("p.png", _png_bytes(x[0]), "image/png")}
        response = client.post("/v1/identify", files=files)
        assert time.perf_counter() - started < 1.0
        code, kind, message = _error(response)
        assert (code, kind) == (503, "unavailable") and "at capacity" in message
        assert int(response.headers["Retry-After"]) >= 1
        prepare.inside = 0
        assert client.post("/v1/identify", files=files).status_code == 200
        metrics = client.get("/metrics").text
        assert 'siamese_refused_total{reason="overloaded"} 1.0' in metrics


def test_a_full_service_refuses_at_the_door_before_reading_the_upload(
    gallery_path: Path,  # noqa: F811
    digits,  # noqa: F811
) -> None:
    x, _ = digits
    settings = ServiceSettings(gallery=str(gallery_path), require_keys=False, max_queue=3)
    with TestClient(create_app(settings)) as client:
        door = client.app.state.service.door
        door.inside = 3  # three recognitions in progress: the door is full
        files = {"image": ("p.png", _png_bytes(x[0]), "image/png")}
        for path in ("/v1/identify", "/v1/galleries/people/embed"):
            response = client.post(path, files=files)
            code, kind, message = _error(response)
            assert (code, kind) == (503, "unavailable") and "3 requests in progress" in message
            assert int(response.headers["Retry-After"]) >= 1
        # what does not recognise passes: reading the gallery, health
        assert client.get("/v1/identities").status_code == 200
        assert client.get("/healthz").status_code == 200
        door.inside = 0
        assert client.post("/v1/identify", files=files).status_code == 200
        assert door.inside == 0  # every admitted request left, answered


def test_a_request_past_its_timeout_is_answered_503(gallery_path: Path, digits) -> None:  # noqa: F811
    x, _ = digits
    settings = ServiceSettings(
        gallery=str(gallery_path), require_keys=False, request_timeout_s=0.05
    )
    with TestClient(create_app(settings)) as client:
        recognizer = client.app.state.service.gallery(None).recognizer
        real = recognizer.prepare_images

        def slow(*args: object) -> object:
            time.sleep(0.2)  # decoding outlasts the request's timeout
            return real(*args)

        recognizer.prepare_images = slow
        files = [("images", ("a.png", _png_bytes(x[0]), "image/png"))]
        response = client.post("/v1/identities", data={"name": "late"}, files=files)
        code, kind, message = _error(response)
        assert (code, kind) == (503, "unavailable") and "timeout" in message
        assert response.headers["Retry-After"] == "1"
        # nothing was written for it
        recognizer.prepare_images = real
        assert client.get("/v1/identities").json()["total"] == 0


# ------------------------------------------------------------------------------------------
# Schema


def test_a_gallery_of_schema_2_gains_per_key_rates_and_keeps_its_keys(
    gallery_path: Path,  # noqa: F811
) -> None:
    store = GalleryStore.open(gallery_path)
    _, key = create_key(store, "admin", "old")
    store.close()
    engine = sa.create_engine(f"sqlite:///{gallery_path}")
    with engine.begin() as conn:  # back to schema 2: keys without a rate column
        conn.execute(sa.text("ALTER TABLE api_keys DROP COLUMN rate_per_minute"))
        conn.execute(
            sa.text("UPDATE gallery_settings SET value = '2' WHERE key = 'schema_version'")
        )
    engine.dispose()
    store = GalleryStore.open(gallery_path)
    assert store.setting("schema_version") == SCHEMA_VERSION == 3
    assert role_of(store, key) == "admin"
    assert [k.rate_per_minute for k in list_keys(store)] == [None]
    record, _ = create_key(store, "recognize", rate_per_minute=30)
    assert json.loads(json.dumps(record.as_dict()))["rate_per_minute"] == 30
    store.close()
