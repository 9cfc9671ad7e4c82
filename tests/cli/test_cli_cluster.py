"""`siamese cluster MODEL PHOTOS... --out DIR` and `siamese gallery enroll GALLERY --clusters
DIR` as a user runs them: real image files, the review folder read back after a person
renamed folders and moved links, the gallery holding exactly the faces the folders hold, and
every refusal saying what, where and what to do without losing anything.

The digits model (no face step: each image one "face") runs the fast end-to-end checks; the
face model of configs/face_pretrained.yaml (dlib's ResNet behind the HOG detector, saved with
train.steps 0) clusters real celebrity photos once."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli_runner import run_cli
from tests.conftest import celebrity_photos, data_dir

# Digit "people": the same 8×8 digit with one pixel changed per photo, so each person's
# photos are near-identical (distance ~0.01) and different people far apart (> 0.4) at the
# digits model's calibrated distance (~0.16). Person → (digit, photos).
PEOPLE = {"zero": (0, 5), "six": (6, 4), "three": (3, 3), "four": (4, 1)}


def _snapshot(root: Path) -> dict[str, object]:
    """Every entry under `root`: a file's bytes, a link's target, a folder's presence."""
    found: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = ("link", os.readlink(path))
        elif path.is_dir():
            found[key] = "dir"
        else:
            found[key] = path.read_bytes()
    return found


def _resolved(paths) -> set[str]:  # type: ignore[no-untyped-def]
    return {str(Path(p).resolve()) for p in paths}


@pytest.fixture
def digit_library(tmp_path: Path) -> dict[str, list[Path]]:
    """photos/<person>-<k>.png for each of PEOPLE, and photos/broken.jpg (garbage bytes)."""
    from siamese.data.sources import load_dataset

    data = load_dataset("digits")
    labels = data.y.numpy()
    folder = tmp_path / "photos"
    folder.mkdir()
    library: dict[str, list[Path]] = {}
    for person, (digit, count) in PEOPLE.items():
        base = data.x[int(np.nonzero(labels == digit)[0][0]), 0].numpy()
        for k in range(count):
            pixels = base.copy()
            pixels[k, 0] = (int(pixels[k, 0]) + 1 + k) % 256
            path = folder / f"{person}-{k}.png"
            Image.fromarray(pixels, "L").save(path)
            library.setdefault(person, []).append(path)
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 this is not a JPEG" * 30)
    library["broken"] = [broken]
    return library


def _cluster(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    return run_cli(["cluster", *argv, "--quiet"], capsys)


def _folder_files(folder: Path) -> set[str]:
    """The photos a people/ folder links to (resolved)."""
    return _resolved(p.resolve() for p in folder.iterdir())


def _gallery_sources(gallery: Path) -> dict[str, set[str]]:
    from siamese.recognition import Gallery

    with Gallery.open_with_its_model(gallery) as opened:
        return {
            info.name: _resolved(e.source for e in opened.examples(info.name))
            for info in opened.identities()
        }


def test_cluster_review_and_enrol_the_folders_as_a_person_left_them(
    tmp_path: Path,
    digit_library: dict[str, list[Path]],
    digits_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    photos = tmp_path / "photos"
    out = tmp_path / "review"
    code, text = _cluster([str(digits_model), str(photos), "--out", str(out)], capsys)
    assert code == 0, text
    assert "14 photos, 13 faces: 3 clusters (largest 5 faces), 1 alone" in text
    assert "pair FAR 0.001, calibrated on" in text and "chinese-whispers" in text
    assert "left out: no face in 0 photo(s), 1 unreadable" in text
    assert "broken.jpg" in text and f"gallery enroll GALLERY --clusters {out}" in text

    record = json.loads((out / "clusters.json").read_text())
    assert record["format"] == 1 and record["photos"] == 14 and record["faces_found"] == 13
    assert record["model"] == str(digits_model) and record["embedded_now"] == 13
    assert record["metric"] == "euclidean" and record["far"] == 0.001
    assert [c["name"] for c in record["clusters"]] == ["cluster-001", "cluster-002", "cluster-003"]
    assert [c["size"] for c in record["clusters"]] == [5, 4, 3]
    assert record["singletons"] == 1 and record["no_face"] == []
    [bad] = record["unreadable"]
    assert bad["file"] == str(photos / "broken.jpg") and "not an image" in bad["reason"]
    by_cluster: dict[str | None, set[str]] = {}
    for face in record["faces"]:
        by_cluster.setdefault(face["cluster"], set()).add(face["file"])
        assert face["box"] is None and face["face"] == 0 and len(face["sha256"]) == 64
        assert face["uncertain"] is False and face["could_join"] is None
        assert 0 <= face["distance_to_centre"] < 0.05
    expected = {
        "cluster-001": {str(p) for p in digit_library["zero"]},
        "cluster-002": {str(p) for p in digit_library["six"]},
        "cluster-003": {str(p) for p in digit_library["three"]},
        None: {str(p) for p in digit_library["four"]},
    }
    assert by_cluster == expected
    assert [f["id"] for f in record["faces"]] == list(range(13))

    with open(out / "clusters.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 13 and list(rows[0]) == [
        "id", "file", "face", "box", "cluster", "distance_to_centre", "uncertain", "could_join",
    ]  # fmt: skip
    for row, face in zip(rows, record["faces"], strict=True):
        assert row["file"] == face["file"] and row["cluster"] == (face["cluster"] or "")
        assert float(row["distance_to_centre"]) == face["distance_to_centre"]

    people = out / "people"
    assert sorted(p.name for p in people.iterdir()) == [
        "cluster-001", "cluster-002", "cluster-003", "unclustered",
    ]  # fmt: skip
    for name, files in expected.items():
        folder = people / (name or "unclustered")
        links = sorted(folder.iterdir())
        assert all(link.is_symlink() for link in links)
        assert _folder_files(folder) == _resolved(files)
        for link in links:  # f<id>-<photo's name>, the id of clusters.json
            face = record["faces"][int(link.name[1:7])]
            assert link.name == f"f{face['id']:06d}-{Path(face['file']).name}"
            assert link.resolve() == Path(face["file"]).resolve()

    sheets = sorted(p.name for p in (out / "sheets").iterdir())
    assert sheets == ["cluster-001.png", "cluster-002.png", "cluster-003.png", "unclustered.png"]
    for sheet in sheets:
        with Image.open(out / "sheets" / sheet) as image:
            image.verify()
        with Image.open(out / "sheets" / sheet) as image:
            assert image.format == "PNG" and image.width >= 96 and image.height > 96
    page = (out / "index.html").read_text()
    assert "<h1>3 clusters in 14 photos</h1>" in page
    for sheet in sheets:
        assert f"src='sheets/{sheet}'" in page
    assert "1 unreadable" in page

    # the review: cluster-001 renamed Ann, one of cluster-003's faces moved into Ann's
    # folder, the lone face moved into cluster-002 (named Bob with --name 2=Bob); cluster-003
    # keeps its generated name: not enrolled
    (people / "cluster-001").rename(people / "Ann")
    moved = sorted((people / "cluster-003").iterdir())[0]
    moved.rename(people / "Ann" / moved.name)
    alone = next((people / "unclustered").iterdir())
    alone.rename(people / "cluster-002" / alone.name)
    ann_files = _folder_files(people / "Ann")
    bob_files = _folder_files(people / "cluster-002")
    assert len(ann_files) == 6 and len(bob_files) == 5

    gallery = tmp_path / "people.sqlite"
    code, text = run_cli(["gallery", "create", str(gallery), "--model", str(digits_model)], capsys)
    assert code == 0, text
    code, text = run_cli(
        ["gallery", "enroll", str(gallery), "--clusters", str(out), "--name", "2=Bob", "--json"],
        capsys,
    )
    assert code == 0, text
    result = json.loads(text)
    assert sorted(result["unnamed"]) == ["cluster-003", "unclustered"]
    assert {e["identity"]: _resolved(e["added"]) for e in result["enrolled"]} == {
        "Ann": ann_files,
        "Bob": bob_files,
    }
    assert _gallery_sources(gallery) == {"Ann": ann_files, "Bob": bob_files}

    # clustering again into the reviewed folder is refused, and nothing is lost
    before = _snapshot(out)
    before.pop("embeddings.sqlite")
    code, text = _cluster([str(digits_model), str(photos), "--out", str(out)], capsys)
    assert code == 1, text
    assert f"{people}: holds folders a person named (Ann)" in text
    assert f"siamese gallery enroll GALLERY --clusters {out}" in text
    assert "choose another --out, or pass --force" in text and "Traceback" not in text
    after = _snapshot(out)
    after.pop("embeddings.sqlite")
    assert after == before
    # with --force: written again, nothing embedded (the cache)
    code, text = _cluster([str(digits_model), str(photos), "--out", str(out), "--force"], capsys)
    assert code == 0, text
    again = json.loads((out / "clusters.json").read_text())
    assert again["embedded_now"] == 0 and again["faces_found"] == 13
    assert again["faces"] == record["faces"]
    assert sorted(p.name for p in people.iterdir()) == [
        "cluster-001", "cluster-002", "cluster-003", "unclustered",
    ]  # fmt: skip


def test_cluster_options_json_summary_and_algorithms(
    tmp_path: Path,
    digit_library: dict[str, list[Path]],
    digits_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    photos = [str(p) for person in ("zero", "six", "four") for p in digit_library[person]]
    out = tmp_path / "out"
    code, text = run_cli(
        ["cluster", str(digits_model), *photos, "--out", str(out), "--json",
         "--threshold", "0.6", "--algorithm", "complete"],
        capsys,
    )  # fmt: skip
    assert code == 0, text
    summary = json.loads(text)
    assert "faces" not in summary and summary["threshold"] == 0.6
    assert summary["threshold_basis"] == "given with --threshold" and summary["far"] is None
    assert summary["algorithm"] == "complete"
    # at 0.6 six and four (0.51 apart) join; zero is 0.56 from six, 0.69 from four: apart
    assert [c["size"] for c in summary["clusters"]] == [5, 5] and summary["singletons"] == 0
    code, text = run_cli(
        ["cluster", str(digits_model), *photos, "--out", str(out), "--algorithm", "kmeans"],
        capsys,
    )
    assert code == 1 and "clustering algorithm 'kmeans' is unknown: use one of" in text, text
    code, text = run_cli(
        ["cluster", str(digits_model), *photos, "--out", str(out), "--far", "0.01", "--json"],
        capsys,
    )
    assert code == 0, text
    assert json.loads(text)["far"] == 0.01 and json.loads(text)["embedded_now"] == 0


def test_a_model_without_thresholds_asks_for_calibration_or_a_threshold(
    tmp_path: Path,
    digit_library: dict[str, list[Path]],
    digits_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A copy of a run whose model.json lost its thresholds: the message names the model
    given (not the run whose weights it shares), says what is missing and what to do."""
    photos = str(tmp_path / "photos")
    out = tmp_path / "out"
    bare = tmp_path / "bare-model"
    shutil.copytree(digits_model, bare)
    description = json.loads((bare / "model.json").read_text())
    description.pop("thresholds")
    (bare / "model.json").write_text(json.dumps(description))
    code, text = _cluster([str(bare), photos, "--out", str(out)], capsys)
    assert code == 1 and "Traceback" not in text
    assert not out.exists()
    assert "has no calibrated thresholds" in text and "--threshold" in text  # what, what to do
    assert f"siamese calibrate {bare} --data folder:PATH" in text  # where: the model given
    assert str(digits_model) not in text  # the copy's original has thresholds
    code, text = _cluster([str(bare), photos, "--out", str(out), "--threshold", "0.2"], capsys)
    assert code == 0, text  # … and the distance given is taken


def test_cluster_refusals_say_what_and_what_to_do_and_write_nothing(
    tmp_path: Path,
    digit_library: dict[str, list[Path]],
    digits_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    photos = str(tmp_path / "photos")
    out = tmp_path / "out"
    code, text = _cluster(
        [str(digits_model), photos, "--out", str(out), "--far", "0.01", "--threshold", "0.2"],
        capsys,
    )
    assert code == 1 and "give --far or --threshold, not both" in text
    assert not out.exists()
    code, text = _cluster(
        [str(digits_model), photos, "--out", str(out), "--threshold", "-1"], capsys
    )
    assert code == 1 and "--threshold -1.0: give a distance >= 0" in text
    assert not out.exists()
    code, text = _cluster([str(digits_model), photos, "--out", str(out), "--far", "1e-9"], capsys)
    assert code == 1 and "Traceback" not in text and "1e-09" in text
    assert not out.exists()

    # no face in any photo: every one unreadable
    junk = tmp_path / "junk"
    junk.mkdir()
    for name in ("a.jpg", "b.png"):
        (junk / name).write_bytes(f"\x00 junk, not {name} ".encode() * 40)
    code, text = _cluster([str(digits_model), str(junk), "--out", str(out)], capsys)
    assert code == 1 and "Traceback" not in text
    assert "none of the 2 photo(s) gave a face (2 unreadable, e.g." in text
    assert "a.jpg" in text and "nothing to cluster" in text
    assert not (out / "clusters.json").exists() and not (out / "people").exists()
    code, text = _cluster([str(digits_model), str(tmp_path / "nowhere"), "--out", str(out)], capsys)
    assert code == 1 and f"{tmp_path / 'nowhere'}: no such file or folder" in text


def test_a_second_run_into_a_folder_inside_the_photos_does_not_cluster_its_links(
    tmp_path: Path,
    digit_library: dict[str, list[Path]],
    digits_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """OUT inside the photo folder: the links of people/ (and the sheets) the first run wrote
    there are not photos for the second."""
    photos = tmp_path / "photos"
    out = photos / "review"
    code, text = _cluster([str(digits_model), str(photos), "--out", str(out)], capsys)
    assert code == 0, text
    first = json.loads((out / "clusters.json").read_text())
    code, text = _cluster([str(digits_model), str(photos), "--out", str(out)], capsys)
    assert code == 0, text
    assert "14 photos, 13 faces" in text
    again = json.loads((out / "clusters.json").read_text())
    assert again["faces"] == first["faces"] and again["embedded_now"] == 0


def test_a_rerun_keeps_a_photo_a_person_added_to_a_cluster_folder(
    tmp_path: Path,
    digit_library: dict[str, list[Path]],
    digits_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A photo a person put into people/cluster-002 (enrolled with that folder's faces) is
    theirs: clustering again into OUT must keep it (or refuse, as for a renamed folder)."""
    photos = tmp_path / "photos"
    out = tmp_path / "out"
    code, text = _cluster([str(digits_model), str(photos), "--out", str(out)], capsys)
    assert code == 0, text
    added = out / "people" / "cluster-002" / "another-six.png"
    shutil.copy(digit_library["six"][0], added)
    code, text = _cluster([str(digits_model), str(photos), "--out", str(out)], capsys)
    assert added.is_file(), f"the person's photo was deleted (exit {code}): {text}"


def test_enrol_clusters_refusals_say_what_and_store_nothing(
    tmp_path: Path,
    digit_library: dict[str, list[Path]],
    digits_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gallery = tmp_path / "people.sqlite"
    code, text = run_cli(["gallery", "create", str(gallery), "--model", str(digits_model)], capsys)
    assert code == 0, text
    enroll = ["gallery", "enroll", str(gallery), "--clusters"]

    nothing = tmp_path / "not-a-review"
    nothing.mkdir()
    code, text = run_cli([*enroll, str(nothing)], capsys)
    assert code == 1 and "Traceback" not in text
    assert f"{nothing}: no clusters.json; give the --out folder of `siamese cluster`" in text

    out = tmp_path / "out"
    code, text = _cluster([str(digits_model), str(tmp_path / "photos"), "--out", str(out)], capsys)
    assert code == 0, text
    code, text = run_cli([*enroll, str(out)], capsys)
    assert code == 1 and f"{out}/people: no folder is named yet (4 keep their generated" in text
    assert "give --name cluster-001=NAME" in text

    code, text = run_cli([*enroll, str(out), "--name", "1=Ann", "--name", "7=Zed"], capsys)
    assert code == 1 and "Traceback" not in text
    assert f"--name 7=Zed: {out / 'people'} has no folder 'cluster-007'" in text
    assert "(it has cluster-001, cluster-002, cluster-003, unclustered)" in text
    code, text = run_cli([*enroll, str(out), "--name", "Ann=Bob"], capsys)
    assert code == 1 and "has no folder 'Ann'" in text
    code, text = run_cli([*enroll, str(out), "--name", "cluster-001"], capsys)
    assert code == 1 and "--name 'cluster-001': give CLUSTER=NAME, e.g. cluster-003=Ann" in text
    code, text = run_cli(
        ["gallery", "enroll", str(gallery), "Ann", str(digit_library["zero"][0]), "--name", "1=A"],
        capsys,
    )
    assert code == 1 and "--name CLUSTER=NAME names the folders of --clusters" in text

    # a link to a face clusters.json does not hold
    stray = out / "people" / "cluster-001" / "f000099-stray.png"
    stray.symlink_to(digit_library["zero"][0])
    code, text = run_cli([*enroll, str(out), "--name", "1=Ann"], capsys)
    assert code == 1 and f"{stray}: names face 99, which" in text
    assert "rename the file without its f-number prefix" in text
    stray.unlink()
    assert _gallery_sources(gallery) == {}  # nothing stored by any refusal

    # cluster-001 and cluster-003 given one name: one person
    code, text = run_cli(
        [*enroll, str(out), "--name", "1=Ann", "--name", "cluster-003=Ann"], capsys
    )
    assert code == 0, text
    assert "Ann: new, 8 face(s) enrolled" in text
    assert "not enrolled: 2 folder(s) keep their generated names (cluster-002, unclustered)" in text
    ann = _folder_files(out / "people" / "cluster-001") | _folder_files(
        out / "people" / "cluster-003"
    )
    assert _gallery_sources(gallery) == {"Ann": ann}


def test_enrol_clusters_from_another_working_directory(
    tmp_path: Path,
    digit_library: dict[str, list[Path]],
    digits_model: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`cd ~/Pictures; siamese cluster MODEL . --out ~/review`, then from elsewhere
    `siamese gallery enroll G --clusters ~/review`: the review folder names its photos so
    that they are found from anywhere."""
    out = tmp_path / "review"
    monkeypatch.chdir(tmp_path / "photos")
    code, text = _cluster([str(digits_model), ".", "--out", str(out)], capsys)
    assert code == 0, text
    (out / "people" / "cluster-002").rename(out / "people" / "Six")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    gallery = tmp_path / "people.sqlite"
    code, text = run_cli(["gallery", "create", str(gallery), "--model", str(digits_model)], capsys)
    assert code == 0, text
    code, text = run_cli(["gallery", "enroll", str(gallery), "--clusters", str(out)], capsys)
    assert code == 0, text
    assert _gallery_sources(gallery) == {"Six": _resolved(digit_library["six"])}


# ------------------------------------------------------------------------------------------
# Real photos through the face model

_FACES = all(importlib.util.find_spec(m) for m in ("cv2", "dlib", "face_recognition_models"))


@pytest.fixture(scope="module")
def face_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """configs/face_pretrained.yaml saved as a run (train.steps 0, thresholds on ORL)."""
    from siamese.config import load_config
    from siamese.training.training_run import train_run

    if not _FACES:
        pytest.skip("the faces extra (dlib, face_recognition_models, opencv) is not installed")
    if data_dir() is None:
        pytest.skip("SIAMESE_DATA_DIR is not set: the face model calibrates on ORL")
    config = Path(__file__).resolve().parents[2] / "configs" / "face_pretrained.yaml"
    out = tmp_path_factory.mktemp("face_model") / "run"
    train_run(load_config(config), out, quiet=True)
    return out


@pytest.mark.slow
def test_faces_of_real_photos_clustered_reviewed_and_enrolled(
    face_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    truth: dict[str, set[str]] = {}
    for person in ("madonna", "ben_afflek"):
        for k, source in enumerate(celebrity_photos("val", person, 5)):
            target = photos / f"{person}-{k}.jpg"
            shutil.copy(source, target)
            truth.setdefault(person, set()).add(str(target))
    wall = photos / "wall.png"
    Image.new("RGB", (240, 240), (200, 200, 200)).save(wall)
    (photos / "garbage.jpg").write_bytes(b"\x00\x01 not an image" * 40)
    out = tmp_path / "out"

    # the calibrated default: the photos without a face and the unreadable one are listed
    code, text = _cluster([str(face_model), str(photos), "--out", str(out)], capsys)
    assert code == 0, text
    assert "12 photos, 10 faces" in text and "pair FAR 0.001, calibrated on" in text
    assert "left out: no face in 1 photo(s), 1 unreadable" in text and "garbage.jpg" in text
    record = json.loads((out / "clusters.json").read_text())
    assert record["no_face"] == [str(wall)] and record["embedded_now"] == 11  # wall too
    assert [u["file"] for u in record["unreadable"]] == [str(photos / "garbage.jpg")]
    assert record["every_face"] is False
    # dlib's ResNet keeps the two people apart (its faces 0.76 or more apart)
    clusters = {}
    for face in record["faces"]:
        assert len(face["box"]) == 4 and face["box"][0] < face["box"][2]
        if face["cluster"] is not None:
            clusters.setdefault(face["cluster"], set()).add(face["file"])
    assert all(any(files <= person for person in truth.values()) for files in clusters.values())

    # at dlib's own distance 0.6, nothing embedded again: exactly the two people
    code, text = _cluster(
        [str(face_model), str(photos), "--out", str(out), "--threshold", "0.6"], capsys
    )
    assert code == 0, text
    record = json.loads((out / "clusters.json").read_text())
    assert record["embedded_now"] == 0 and record["singletons"] == 0
    found = {}
    for face in record["faces"]:
        found.setdefault(face["cluster"], set()).add(face["file"])
    assert sorted(found.values(), key=sorted) == sorted(truth.values(), key=sorted)
    for sheet in (out / "sheets").iterdir():
        with Image.open(sheet) as image:
            assert image.format == "PNG" and image.size[0] > 96
    madonna = next(name for name, files in found.items() if files == truth["madonna"])
    ben = next(name for name, files in found.items() if files == truth["ben_afflek"])

    # Madonna's folder renamed; one of her faces moved to Ben's, named with --name
    people = out / "people"
    (people / madonna).rename(people / "Madonna")
    link = sorted((people / "Madonna").iterdir())[0]
    link.rename(people / ben / link.name)
    gallery = tmp_path / "people.sqlite"
    code, text = run_cli(["gallery", "create", str(gallery), "--model", str(face_model)], capsys)
    assert code == 0, text
    code, text = run_cli(
        ["gallery", "enroll", str(gallery), "--clusters", str(out), "--name", f"{ben}=Ben"],
        capsys,
    )
    assert code == 0, text
    assert "Ben: new, 6 face(s) enrolled" in text and "Madonna: new, 4 face(s) enrolled" in text
    assert _gallery_sources(gallery) == {
        "Madonna": _folder_files(people / "Madonna"),
        "Ben": _folder_files(people / ben),
    }

    # no face in any photo: says so, and what to try
    walls = tmp_path / "walls"
    walls.mkdir()
    shutil.copy(wall, walls / "a.png")
    Image.new("RGB", (200, 160), (30, 60, 90)).save(walls / "b.png")
    empty = tmp_path / "empty-out"
    code, text = _cluster([str(face_model), str(walls), "--out", str(empty)], capsys)
    assert code == 1 and "Traceback" not in text
    assert "no face found in any of the 2 photo(s): nothing to cluster" in text
    assert "try the other detector" in text
    assert not (empty / "clusters.json").exists() and not (empty / "people").exists()


def test_every_face_of_group_photos_clustered_and_enrolled_face_by_face(
    face_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--every-face: two people side by side in one photo are two faces, each enrolled
    into the person whose folder holds it."""
    madonna = celebrity_photos("val", "madonna", 3)
    ben = celebrity_photos("val", "ben_afflek", 3)
    photos = tmp_path / "photos"
    photos.mkdir()
    for k, source in enumerate([*madonna[:2], *ben[:2]]):
        shutil.copy(source, photos / f"single-{k}.jpg")
    with Image.open(madonna[2]) as left, Image.open(ben[2]) as right:
        left, right = left.convert("RGB"), right.convert("RGB")
        height = max(left.height, right.height)
        group = Image.new("RGB", (left.width + right.width, height), "white")
        group.paste(left, (0, 0))
        group.paste(right, (left.width, 0))
        group.save(photos / "group.jpg")
    out = tmp_path / "out"
    code, text = _cluster(
        [str(face_model), str(photos), "--out", str(out), "--every-face", "--threshold", "0.6"],
        capsys,
    )
    assert code == 0, text
    record = json.loads((out / "clusters.json").read_text())
    assert record["every_face"] is True
    group_faces = [f for f in record["faces"] if f["file"].endswith("group.jpg")]
    assert len(group_faces) == 2 and {f["face"] for f in group_faces} == {0, 1}
    assert group_faces[0]["cluster"] != group_faces[1]["cluster"]  # two people, two clusters
    assert record["clusters"][0]["size"] == 3 and record["clusters"][1]["size"] == 3
    gallery = tmp_path / "g.sqlite"
    code, text = run_cli(["gallery", "create", str(gallery), "--model", str(face_model)], capsys)
    assert code == 0, text
    code, text = run_cli(
        ["gallery", "enroll", str(gallery), "--clusters", str(out),
         "--name", "1=P1", "--name", "2=P2", "--json"],
        capsys,
    )  # fmt: skip
    assert code == 0, text
    enrolled = {e["identity"]: e["added"] for e in json.loads(text)["enrolled"]}
    assert sorted(enrolled) == ["P1", "P2"]
    for person in ("P1", "P2"):  # one face of the group photo each, by its face number
        assert len(enrolled[person]) == 3
        assert sum("group.jpg (face " in s for s in enrolled[person]) == 1
