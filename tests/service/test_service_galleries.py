"""Several galleries behind one service: `/v1/galleries/{name}/...` beside the default
gallery's `/v1/...`, keys that open their own gallery only (an admin key of the default gallery
administers all), galleries created and deleted through the API in a served folder, and
workers that see each other's new galleries."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")
from fastapi.testclient import TestClient

from siamese.errors import ConfigError
from siamese.recognition import Gallery, Recognizer
from siamese.recognition.gallery_store import GalleryStore
from siamese.service.app import ServiceSettings, create_app
from siamese.service.keys import create_key
from siamese.service.settings import gallery_name, gallery_targets
from tests.serve_process import ServeProcess
from tests.service.test_service import _error, _png_bytes, digits  # noqa: F401


def _gallery(path: Path, model: Path) -> Path:
    Gallery.create(path, Recognizer.load(model), far=1e-2).close()
    return path


def _key(path: Path, role: str) -> str:
    store = GalleryStore.open(path)
    try:
        return create_key(store, role)[1]
    finally:
        store.close()


def _enroll(client: TestClient, prefix: str, name: str, image: bytes, key: str) -> object:
    files = [("images", ("a.png", image, "image/png"))]
    return client.post(
        f"{prefix}/identities", data={"name": name}, files=files, headers={"X-API-Key": key}
    )


def _identify(client: TestClient, prefix: str, image: bytes, key: str) -> object:
    files = {"image": ("p.png", image, "image/png")}
    return client.post(f"{prefix}/identify", files=files, headers={"X-API-Key": key})


def test_two_galleries_keep_their_people_and_their_keys_apart(
    tmp_path: Path,
    digits_model: Path,
    digits,  # noqa: F811
) -> None:
    x, y = digits
    shop, office = (
        _gallery(tmp_path / "shop.sqlite", digits_model),
        _gallery(tmp_path / "office.sqlite", digits_model),
    )
    shop_admin, office_admin = _key(shop, "admin"), _key(office, "admin")
    office_reader = _key(office, "recognize")
    settings = ServiceSettings(gallery=str(shop), galleries={"office": str(office)})
    zero, one = _png_bytes(x[y == 0][0]), _png_bytes(x[y == 1][0])
    with TestClient(create_app(settings)) as client:
        # each gallery's admin enrolls in its own gallery
        assert _enroll(client, "/v1", "zero", zero, shop_admin).status_code == 201
        assert _enroll(client, "/v1/galleries/office", "one", one, office_admin).status_code == 201
        # a key opens its own gallery only
        for prefix, key in (("/v1", office_admin), ("/v1/galleries/shop", office_reader)):
            code, kind, message = _error(_identify(client, prefix, zero, key))
            assert (code, kind) == (401, "unauthorized") and "'shop'" in message
        # people stay in their gallery
        [answer] = _identify(client, "/v1/galleries/office", one, office_reader).json()["results"]
        assert answer["identity"] == "one"
        [answer] = _identify(client, "/v1", one, shop_admin).json()["results"]
        assert answer["identity"] != "one"
        # the default gallery's admin administers every gallery; a reader of it does not
        two = _png_bytes(x[y == 2][0])
        assert _enroll(client, "/v1/galleries/office", "two", two, shop_admin).status_code == 201
        listed = client.get("/v1/galleries/office/identities", headers={"X-API-Key": shop_admin})
        assert [i["name"] for i in listed.json()["items"]] == ["one", "two"]
        # each caller lists the galleries it opens
        mine = client.get("/v1/galleries", headers={"X-API-Key": office_reader}).json()
        assert [(g["name"], g["default"]) for g in mine["items"]] == [("office", False)]
        every = client.get("/v1/galleries", headers={"X-API-Key": shop_admin}).json()
        assert [(g["name"], g["identities"]) for g in every["items"]] == [
            ("shop", 1),
            ("office", 2),
        ]
        code, kind, message = _error(
            client.get("/v1/galleries/attic/model", headers={"X-API-Key": shop_admin})
        )
        assert (code, kind) == (404, "not_found") and "office, shop" in message
        # no folder: galleries cannot be made through the API
        response = client.post(
            "/v1/galleries", json={"name": "new"}, headers={"X-API-Key": shop_admin}
        )
        assert _error(response)[:2] == (400, "invalid_request")
        assert (
            client.post(
                "/v1/galleries", json={"name": "new"}, headers={"X-API-Key": office_admin}
            ).status_code
            == 401
        )
        # the schema documents {gallery} on every gallery route
        schema = client.get("/openapi.json").json()
        for path, operations in schema["paths"].items():
            if path.startswith("/v1/galleries/{gallery}"):
                for operation in operations.values():
                    names = [p["name"] for p in operation.get("parameters", [])]
                    assert "gallery" in names, (path, names)
        metrics = client.get("/metrics").text
        assert 'siamese_gallery_identities{gallery="office"} 2.0' in metrics
        assert 'route="/v1/galleries/{gallery}/identify"' in metrics


def test_a_folder_of_galleries_grows_and_shrinks_through_the_api(
    tmp_path: Path,
    digits_model: Path,
    digits,  # noqa: F811
) -> None:
    x, y = digits
    folder = tmp_path / "galleries"
    folder.mkdir()
    default = _gallery(folder / "default.sqlite", digits_model)
    admin = _key(default, "admin")
    gallery, named, name = gallery_targets([], str(folder))
    settings = ServiceSettings(
        gallery=gallery, galleries=named, folder=str(folder), default_name=name
    )
    headers = {"X-API-Key": admin}
    one = _png_bytes(x[y == 1][0])
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        made = first.post("/v1/galleries", json={"name": "team-a", "far": 0.01}, headers=headers)
        assert made.status_code == 201, made.text
        assert made.json()["identities"] == 0 and (folder / "team-a.sqlite").is_file()
        assert _error(first.post("/v1/galleries", json={"name": "team-a"}, headers=headers))[
            :2
        ] == (409, "conflict")
        for bad in ("Team", "../up", "-x", ""):
            response = first.post("/v1/galleries", json={"name": bad}, headers=headers)
            assert response.status_code == 400, (bad, response.text)
        # a key for the new gallery, made through the API, opens it and nothing else
        key = first.post(
            "/v1/galleries/team-a/keys", json={"role": "admin"}, headers=headers
        ).json()["key"]
        assert _enroll(first, "/v1/galleries/team-a", "one", one, key).status_code == 201
        assert _identify(first, "/v1", one, key).status_code == 401
        # another worker on the same folder serves the gallery the first one made
        [answer] = _identify(second, "/v1/galleries/team-a", one, key).json()["results"]
        assert answer["identity"] == "one"
        assert [
            g["name"] for g in second.get("/v1/galleries", headers=headers).json()["items"]
        ] == [
            "default",
            "team-a",
        ]
        # deleting: not the default; a folder gallery, file and all, for every worker
        assert _error(first.delete("/v1/galleries/default", headers=headers))[:2] == (
            409,
            "conflict",
        )
        assert first.delete("/v1/galleries/team-a", headers={"X-API-Key": key}).status_code == 401
        assert first.delete("/v1/galleries/team-a", headers=headers).status_code == 204
        assert not list(folder.glob("team-a.sqlite*"))
        for client in (first, second):
            response = _identify(client, "/v1/galleries/team-a", one, admin)
            assert _error(response)[:2] == (404, "not_found")


def test_what_serve_is_given_names_the_galleries() -> None:
    assert gallery_name("/data/Shop Front.sqlite") == "shop-front"
    assert gallery_name("postgresql://u@db:5432/people?sslmode=require") == "people"
    location, named, default = gallery_targets(
        ["shop.sqlite", "hq=postgresql://u@db/people?sslmode=require"]
    )
    assert (location, default) == ("shop.sqlite", "shop")
    assert named == {"shop": "shop.sqlite", "hq": "postgresql://u@db/people?sslmode=require"}
    assert gallery_targets(["a.sqlite", "b.sqlite"], default="b")[0] == "b.sqlite"
    with pytest.raises(ConfigError, match=r"two galleries are named 'a'.*NAME=LOCATION"):
        gallery_targets(["x/a.sqlite", "y/a.sqlite"])
    with pytest.raises(ConfigError, match=r"no gallery 'c' to be the default; served: a, b"):
        gallery_targets(["a.sqlite", "b.sqlite"], default="c")
    with pytest.raises(ConfigError, match=r"give a gallery to serve"):
        gallery_targets([])


def test_siamese_serve_serves_several_galleries_from_the_command_line(
    tmp_path: Path, digits_model: Path
) -> None:
    import httpx

    shop = _gallery(tmp_path / "shop.sqlite", digits_model)
    office = _gallery(tmp_path / "office.sqlite", digits_model)
    server = ServeProcess(shop, tmp_path / "server.log", f"hq={office}").start()
    try:
        listed = httpx.get(f"{server.base}/v1/galleries").json()
        assert [(g["name"], g["default"]) for g in listed["items"]] == [
            ("shop", True),
            ("hq", False),
        ]
        assert httpx.get(f"{server.base}/v1/galleries/hq/model").status_code == 200
    finally:
        server.stop()
