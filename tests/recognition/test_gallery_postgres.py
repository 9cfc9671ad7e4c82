"""The gallery on a real PostgreSQL server: the same interface, schema and migrations as on
SQLite; writers from several processes queue and lose nothing; every process's search follows
the others' writes; the service reports not-ready while the database is down and recovers."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch

from siamese.data.sources import load_dataset
from siamese.errors import ConfigError
from siamese.recognition import Gallery, Recognizer
from siamese.recognition.gallery_store import SCHEMA_VERSION, GalleryStore, database_url
from tests.postgres_server import Postgres


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_dataset("digits")
    return data.x, data.y


def test_postgres_urls_use_psycopg_3() -> None:
    assert database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_a_gallery_in_postgres_behaves_as_in_sqlite(
    postgres: Postgres, digits_model: Path, digits, tmp_path: Path
) -> None:
    x, y = digits
    recognizer = Recognizer.load(digits_model)
    url = postgres.database()
    results = {}
    for where in (url, str(tmp_path / "g.sqlite")):
        with Gallery.create(where, recognizer, far=1e-2) as gallery:
            for digit in range(4):
                gallery.enroll(f"d{digit}", list(x[y == digit][:3]), metadata={"digit": digit})
            gallery.rename("d3", "three")
            gallery.remove("d2")
            answers = gallery.identify(list(x[200:220]), k=3)
            results[where] = [(a.label, round(a.distance, 5)) for a in answers]
            stats = gallery.stats()
        assert stats["identities"] == 3 and stats["examples"] == 9
        assert stats["schema_version"] == SCHEMA_VERSION
    assert results[url] == results[str(tmp_path / "g.sqlite")]
    with Gallery.open(url, recognizer) as again:
        assert [i.name for i in again.identities()] == ["d0", "d1", "three"]
        assert again.identities()[2].metadata == {"digit": 3}


def _enrol_many(url: str, model: str, worker: int, rounds: int) -> list[str]:
    data = load_dataset("digits")
    with Gallery.open(url, Recognizer.load(model)) as gallery:
        done = []
        for r in range(rounds):
            # every worker writes the same new identities: they must queue, not collide
            result = gallery.enroll(f"shared{r}", [data.x[worker * 100 + r]])
            done += result.added
        return done


def test_writers_in_several_processes_queue_and_lose_nothing(
    postgres: Postgres, digits_model: Path
) -> None:
    recognizer = Recognizer.load(digits_model)
    url = postgres.database()
    Gallery.create(url, recognizer).close()
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        outcomes = pool.starmap(_enrol_many, [(url, str(digits_model), w, 6) for w in range(3)])
    assert all(len(added) == 6 for added in outcomes)
    with Gallery.open(url, recognizer) as gallery:
        counts = {i.name: i.examples for i in gallery.identities()}
    assert counts == {f"shared{r}": 3 for r in range(6)}


def test_each_process_finds_what_another_enrolled(
    postgres: Postgres, digits_model: Path, digits
) -> None:
    x, y = digits
    recognizer = Recognizer.load(digits_model)
    url = postgres.database()
    first = Gallery.create(url, recognizer, far=1e-2)
    second = Gallery.open(url, Recognizer.load(digits_model))
    assert second.identify(x[0])[0].candidates == []  # its search is built, empty
    first.enroll("zero", list(x[y == 0][:3]))
    # the very next search of the other sees it: it checks the write counter each time
    [answer] = second.identify(x[y == 0][:1])
    assert answer.candidates[0].identity == "zero"
    first.remove("zero")
    assert second.identify(x[0])[0].candidates == []
    first.close()
    second.close()


def test_schema_migrates_from_version_1(postgres: Postgres, digits_model: Path) -> None:
    recognizer = Recognizer.load(digits_model)
    url = postgres.database()
    Gallery.create(url, recognizer).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # back to the first schema: no API keys table
        conn.execute(sa.text("DROP TABLE api_keys"))
        conn.execute(
            sa.text("UPDATE gallery_settings SET value = '1' WHERE key = 'schema_version'")
        )
    engine.dispose()
    store = GalleryStore.open(url)
    assert store.setting("schema_version") == SCHEMA_VERSION
    with store.engine.connect() as conn:
        assert sa.inspect(conn).has_table("api_keys")
    store.close()


def test_the_service_on_postgres_is_not_ready_while_it_is_down_and_recovers(
    postgres: Postgres, digits_model: Path, digits
) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from siamese.service.app import ServiceSettings, create_app
    from tests.service.test_service import _png_bytes

    x, y = digits
    url = postgres.database()
    Gallery.create(url, Recognizer.load(digits_model), far=1e-2).close()
    image = {"image": ("p.png", _png_bytes(x[y == 0][0]), "image/png")}
    settings = ServiceSettings(gallery=url, require_keys=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        files = [("images", ("z.png", _png_bytes(x[y == 0][1]), "image/png"))]
        assert client.post("/v1/identities", data={"name": "zero"}, files=files).status_code == 201
        assert client.get("/readyz").status_code == 200
        postgres.stop()
        try:
            down = client.get("/readyz")
            assert down.status_code == 503 and down.json()["status"] == "database unavailable"
            failed = client.post("/v1/identify", files=image)
            assert failed.status_code == 503 and failed.json()["error"]["code"] == "unavailable"
            assert failed.json()["error"]["message"].startswith("cannot connect to")
            # opening the gallery while its server is down says so first, without the password
            secret = url.replace("://postgres@", "://postgres:hunter2@", 1)
            assert "hunter2" in secret
            with pytest.raises(ConfigError, match=r"^cannot connect to postgresql://") as err:
                GalleryStore.open(secret)
            assert "hunter2" not in str(err.value) and "running and reachable" in str(err.value)
        finally:
            postgres.start()
        assert client.get("/readyz").status_code == 200  # no restart of the service
        answer = client.post("/v1/identify", files=image).json()["results"][0]
        assert answer["candidates"][0]["identity"] == "zero"
