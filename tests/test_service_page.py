"""The service's web page in a real headless browser (Debian's chromium driven by Playwright)
against `siamese serve` on loopback: enter the API key, enrol two people from their photos,
identify a third photo of one of them, then a stranger; delete a person.

With SIAMESE_SCREENSHOT=PATH the page is also saved there (README's screenshot)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import celebrity_photos, data_dir
from serve_process import ServeProcess

pytest.importorskip("fastapi", reason="the serve extra is not installed")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _needs(condition: bool, reason: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            raise RuntimeError(f"CI must provide it: {reason}")
        pytest.skip(reason)


@pytest.mark.slow
def test_the_page_enrols_identifies_and_rejects_a_stranger_in_chromium(
    tmp_path: Path, repo_root: Path
) -> None:
    import httpx

    _needs(CHROMIUM is not None, "Debian's chromium is not installed")
    _needs(data_dir() is not None, "SIAMESE_DATA_DIR is not set")
    faces = all(
        __import__("importlib").util.find_spec(m)
        for m in ("cv2", "dlib", "face_recognition_models")
    )
    _needs(faces, "the faces extra is not installed")
    from siamese.config import load_config
    from siamese.recognition import Gallery, Recognizer
    from siamese.recognition.gallery_store import GalleryStore
    from siamese.service.keys import create_key
    from siamese.training.run import train_run

    model = tmp_path / "faces"
    train_run(load_config(repo_root / "configs" / "face_pretrained.yaml"), model, quiet=True)
    gallery = tmp_path / "people.sqlite"
    Gallery.create(gallery, Recognizer.load(model), far=1e-2, keep_images=True).close()
    store = GalleryStore.open(gallery)
    _, key = create_key(store, "admin", "browser test")
    store.close()

    server = ServeProcess(gallery, tmp_path / "server.log").start()
    base = server.base
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            page = browser.new_page(viewport={"width": 900, "height": 1000})
            page.goto(base)
            page.fill("#api-key", key)
            page.dispatch_event("#api-key", "change")
            page.wait_for_selector("#model:has-text('threshold')")

            for person in ("madonna", "ben_afflek"):
                page.fill("#enroll-name", person)
                page.set_input_files(
                    "#enroll-files", [str(f) for f in celebrity_photos("train", person, 4)]
                )
                page.click("#enroll-form button")
                page.wait_for_selector(f"#enroll-result:has-text('{person}: ')")
                page.wait_for_selector(f"#people li[data-name='{person}']")
            assert page.inner_text("#error") == ""

            page.set_input_files("#identify-file", str(celebrity_photos("val", "madonna", 3)[2]))
            page.click("#identify-form button")
            page.wait_for_selector("#decision")
            assert page.inner_text("#decision") == "madonna"
            # the evidence: the gallery's threshold, its rule, the strangers it accepts
            evidence = page.inner_text("#evidence")
            assert "pair FAR 0.01" in evidence and "strangers accepted" in evidence
            assert page.locator(".candidate.accepted img").count() == 1  # her enrolled photo
            if os.environ.get("SIAMESE_SCREENSHOT"):
                page.screenshot(path=os.environ["SIAMESE_SCREENSHOT"], full_page=True)

            page.set_input_files(
                "#identify-file", str(celebrity_photos("val", "jerry_seinfeld", 1)[0])
            )
            page.click("#identify-form button")
            page.wait_for_function(
                "document.querySelector('#decision') && "
                "document.querySelector('#decision').textContent === 'unknown'"
            )

            page.on("dialog", lambda dialog: dialog.accept())
            page.click("#people li[data-name='ben_afflek'] button")
            page.wait_for_selector("#people li[data-name='ben_afflek']", state="detached")
            browser.close()
        people = httpx.get(f"{base}/v1/identities", headers={"X-API-Key": key}).json()
        assert [p["name"] for p in people["items"]] == ["madonna"]
        # a face gallery and a photo without a face: a clear 422
        from io import BytesIO

        from PIL import Image

        wall = BytesIO()
        Image.new("RGB", (300, 300), (200, 200, 200)).save(wall, format="PNG")
        answer = httpx.post(
            f"{base}/v1/identify",
            headers={"X-API-Key": key},
            files={"image": ("wall.png", wall.getvalue(), "image/png")},
        )
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "no_face"
        assert "no face found" in answer.json()["error"]["message"]
    finally:
        server.stop()
    output = server.log()
    assert "Traceback" not in output, output
