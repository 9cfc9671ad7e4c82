"""The service's web page in a real headless browser (Debian's chromium driven by Playwright)
against `siamese serve` on loopback: the error without a key, enter the key, enroll two people
from their photos, search them by name, drop a photo of one of them, identify both in one
photo (each face boxed and named), a stranger, remove and add one person's photos, the camera
live (a fake device), delete a person, and the page at a phone's width by keyboard.

With SIAMESE_SCREENSHOT=DIR the page is also saved there, at a desktop's and a phone's width
(README's screenshots: docs/service_page.png, docs/service_page_phone.png)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import celebrity_photos, data_dir
from tests.serve_process import ServeProcess

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
    from siamese.training.training_run import train_run

    model = tmp_path / "faces"
    train_run(load_config(repo_root / "configs" / "face_pretrained.yaml"), model, quiet=True)
    gallery = tmp_path / "people.sqlite"
    Gallery.create(gallery, Recognizer.load(model), far=1e-2, keep_images=True).close()
    store = GalleryStore.open(gallery)
    _, key = create_key(store, "admin", "browser test")
    store.close()

    server = ServeProcess(gallery, tmp_path / "server.log").start()
    base = server.base
    madonna = celebrity_photos("val", "madonna", 3)
    ben = celebrity_photos("val", "ben_afflek", 2)
    group = tmp_path / "group.jpg"
    _side_by_side([madonna[2], ben[0]], group)
    shots = os.environ.get("SIAMESE_SCREENSHOT")
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                # a fake camera (a test pattern) that needs no permission prompt
                args=[
                    *FLAGS,
                    "--use-fake-device-for-media-stream",
                    "--use-fake-ui-for-media-stream",
                ],
                headless=True,
            )
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            identifications = []
            page.on(
                "request", lambda r: identifications.append(r.url) if "/identify" in r.url else None
            )
            page.goto(base)
            # every control has a label a screen reader reads
            unlabelled = page.evaluate(
                "[...document.querySelectorAll('input, select')].filter("
                "e => !e.labels.length && !e.getAttribute('aria-label')).map(e => e.id)"
            )
            assert unlabelled == []
            # without a key: the error says what to do, in words
            page.wait_for_selector("#error:has-text('paste one above')")
            page.fill("#api-key", key)
            page.dispatch_event("#api-key", "change")
            page.wait_for_selector("#model:has-text('Same person when the distance is at most')")
            assert "strangers" in page.inner_text("#model")
            assert page.inner_text("#gallery").startswith("people (default)")
            assert page.inner_text("#error") == ""

            for person in ("madonna", "ben_afflek"):
                page.fill("#enroll-name", person)
                page.set_input_files(
                    "#enroll-files", [str(f) for f in celebrity_photos("train", person, 4)]
                )
                page.click("#enroll-form button[type=submit]")
                page.wait_for_selector(f"#enroll-result:has-text('{person}: ')")
                page.wait_for_selector(f"#people li[data-name='{person}'] img")
            assert page.inner_text("#error") == ""

            # search by name
            page.fill("#people-search", "MAD")
            page.wait_for_selector("#people li[data-name='ben_afflek']", state="detached")
            assert page.locator("#people li[data-name='madonna']").count() == 1
            page.fill("#people-search", "")
            page.wait_for_selector("#people li[data-name='ben_afflek']")

            # a photo dropped on the page is identified at once
            _drop(page, "#identify-drop", madonna[2])
            page.wait_for_function(
                "document.querySelector('#decision') && "
                "document.querySelector('#decision').textContent === 'madonna'"
            )
            assert page.locator("#identify-canvas").count() == 1
            # the evidence: the gallery's threshold, its rule, the strangers it accepts
            evidence = page.inner_text("#evidence")
            assert "pair FAR 0.01" in evidence and "strangers accepted" in evidence
            assert page.locator(".candidate.accepted img").count() == 1  # her enrolled photo
            assert "2 people" in page.inner_text("#gallery")

            # two people in one photo: each face boxed and named
            page.set_input_files("#identify-file", str(group))
            page.click("#identify-form button[type=submit]")
            page.wait_for_selector("ol.faces li:nth-child(2)")
            named = page.locator("ol.faces li").all_inner_texts()
            assert {n.split(" (")[0] for n in named} == {"madonna", "ben_afflek"}, named
            if shots:
                page.screenshot(path=f"{shots}/service_page.png", full_page=True)

            page.set_input_files(
                "#identify-file", str(celebrity_photos("val", "jerry_seinfeld", 1)[0])
            )
            page.click("#identify-form button[type=submit]")
            page.wait_for_function(
                "document.querySelector('#decision') && "
                "document.querySelector('#decision').textContent === 'unknown'"
            )

            # one person's photos: remove one, add one
            page.click("#people li[data-name='madonna'] button.open")
            page.wait_for_selector("#person h3:has-text('madonna — 4 photo(s)')")
            page.locator("#person .examples li button").first.click()
            page.wait_for_selector("#person h3:has-text('madonna — 3 photo(s)')")
            page.set_input_files("#person-files", str(madonna[0]))
            page.click("#person button:has-text('Add these photos')")
            page.wait_for_selector("#person h3:has-text('madonna — 4 photo(s)')")

            # the camera, live: a frame a second is identified (the fake camera has no face)
            before = len(identifications)
            page.click("#camera-start")
            page.wait_for_selector("#camera:not([hidden])")
            page.check("#camera-live")
            page.wait_for_timeout(3500)
            page.uncheck("#camera-live")
            assert len(identifications) - before >= 2, identifications
            page.click("#camera-stop")

            page.on("dialog", lambda dialog: dialog.accept())
            page.click("#people li[data-name='ben_afflek'] button.remove")
            page.wait_for_selector("#people li[data-name='ben_afflek']", state="detached")

            # a phone's width: one column, nothing wider than the screen, the keyboard works
            page.set_viewport_size({"width": 390, "height": 844})
            page.wait_for_timeout(200)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.focus("#people li[data-name='madonna'] button.open")
            page.keyboard.press("Enter")
            page.wait_for_selector("#person h3:has-text('madonna')")
            page.wait_for_selector("#person .examples img")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            if shots:
                page.screenshot(path=f"{shots}/service_page_phone.png", full_page=True)
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


def _side_by_side(photos: list[Path], out: Path) -> None:
    """One photo of several people: their photos side by side, at one height."""
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in photos]
    height = min(i.height for i in images)
    images = [i.resize((round(i.width * height / i.height), height)) for i in images]
    canvas = Image.new("RGB", (sum(i.width for i in images), height), (255, 255, 255))
    left = 0
    for image in images:
        canvas.paste(image, (left, 0))
        left += image.width
    canvas.save(out, quality=92)


def _drop(page: object, selector: str, photo: Path) -> None:
    """Drag `photo` from outside the browser and drop it on `selector`."""
    import base64

    data = base64.b64encode(photo.read_bytes()).decode()
    transfer = page.evaluate_handle(  # type: ignore[attr-defined]
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
            return transfer;
        }""",
        [data, photo.name],
    )
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})  # type: ignore[attr-defined]
