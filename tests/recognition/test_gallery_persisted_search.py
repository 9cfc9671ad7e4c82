"""The gallery's search snapshot on disk (`gallery_index_files`, `gallery_search_cache`): written
beside a real SQLite gallery, read at the next start without reading an embedding, kept in
step with other processes' writes by example ids, rebuilt when damaged or of other
embeddings, rewritten when the changes grow; example ids are never reused."""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from siamese.data.sources import load_dataset
from siamese.recognition import Gallery, Recognizer
from siamese.recognition import gallery_search_cache as cache_module
from siamese.recognition.gallery_index_files import index_folder
from siamese.recognition.gallery_store import GalleryStore

pytest.importorskip("faiss")

PEOPLE, EACH = 120, 10  # 1,200 examples: above FLAT_BELOW, so "ivf" builds an inverted file


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_dataset("digits")
    return data.x, data.y


@pytest.fixture
def recognizer(digits_model: Path) -> Recognizer:
    return Recognizer.load(digits_model)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, digits_model: Path, digits) -> Path:
    """A gallery of 120 'people' × 10 digit images, made once (without a snapshot)."""
    x, _ = digits
    path = tmp_path_factory.mktemp("template") / "g.sqlite"
    with Gallery.create(path, Recognizer.load(digits_model), search="exact", persist=False) as g:
        for person in range(PEOPLE):
            g.enroll(f"person {person}", list(x[person * EACH : (person + 1) * EACH]))
    return path


@pytest.fixture
def filled(tmp_path: Path, template: Path) -> Path:
    """A copy of the template gallery of this test's own."""
    path = tmp_path / "g.sqlite"
    shutil.copyfile(template, path)
    return path


def _answers(gallery: Gallery, probes: list[torch.Tensor]) -> list[list[str]]:
    return [[c.identity for c in a.candidates] for a in gallery.identify(probes, k=3)]


def _no_embedding_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("every embedding was read from the database")

    monkeypatch.setattr(GalleryStore, "all_embeddings", refuse)


@pytest.mark.parametrize("kind", ["ivf", "exact"])
def test_a_restart_reads_the_snapshot_not_the_embeddings(
    filled: Path, recognizer: Recognizer, digits, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, _ = digits
    probes = list(x[1300:1340])
    with Gallery.open(filled, recognizer, search=kind) as gallery:
        status = gallery.load_search()
        first = _answers(gallery, probes)
    folder = filled.parent / "g.sqlite.index" / kind
    assert status["index_folder"] == str(folder)
    assert "no index file yet" in status["rebuilt_because"]
    names = {p.name for p in folder.iterdir()}
    assert {"meta.json", "rows.npy", "ids.npy"} <= names
    meta = json.loads((folder / "meta.json").read_text())
    if kind == "ivf":
        assert "index.faiss" in names and meta["index"]["kind"] == "ivf"
        assert meta["tuning"]["met"] and meta["tuning"]["agreement"] >= 0.999
        assert meta["tuning"]["params"] == meta["index"]["params"]
    _no_embedding_reads(monkeypatch)
    with Gallery.open(filled, recognizer, search=kind) as again:
        status = again.load_search()
        assert "rebuilt_because" not in status and status["added_since"] == 0
        assert _answers(again, probes) == first


def test_writes_elsewhere_reach_an_open_search_by_example_ids(
    filled: Path, recognizer: Recognizer, digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, _ = digits
    reader = Gallery.open(filled, recognizer, search="ivf")
    reader.load_search()
    _no_embedding_reads(monkeypatch)
    with Gallery.open(filled, recognizer, search="ivf") as writer:  # another process's view
        writer.enroll("newcomer", [x[1500], x[1501]])
        writer.remove("person 3")
    [answer] = reader.identify(x[1500], k=3)
    assert answer.candidates[0].identity == "newcomer"
    assert answer.candidates[0].distance == pytest.approx(0.0, abs=1e-3)
    assert reader.search_status()["added_since"] == 2
    for a in reader.identify(list(x[30:40]), k=5):  # person 3's own images
        assert "person 3" not in [c.identity for c in a.candidates]
    # this process's own writes update the search in place
    reader.enroll("own", x[1600])
    assert reader.identify(x[1600])[0].candidates[0].identity == "own"
    reader.close()


@pytest.mark.parametrize("damaged", ["rows.npy", "index.faiss", "ids.npy", "meta.json"])
def test_a_damaged_snapshot_is_rebuilt_and_answers_stay_right(
    filled: Path, recognizer: Recognizer, digits, damaged: str
) -> None:
    x, _ = digits
    probes = list(x[1300:1330])
    with Gallery.open(filled, recognizer, search="ivf") as gallery:
        gallery.load_search()
        first = _answers(gallery, probes)
    # Damage at rest (a disk, another program), as between two runs: a file this process
    # still maps must not be truncated under it (touching the mapping then is a bus error,
    # which is why snapshots are only ever replaced as a whole, never edited in place).
    del gallery
    gc.collect()
    path = filled.parent / "g.sqlite.index" / "ivf" / damaged
    data = bytearray(path.read_bytes())
    if damaged == "index.faiss":
        path.write_bytes(bytes(data[: len(data) // 2]))  # truncated
    else:
        middle = len(data) // 2
        data[middle : middle + 8] = bytes(255 - b for b in data[middle : middle + 8])
        path.write_bytes(bytes(data))
    with Gallery.open(filled, recognizer, search="ivf") as gallery:
        status = gallery.load_search()
        assert "rebuilt_because" in status
        assert _answers(gallery, probes) == first
    with Gallery.open(filled, recognizer, search="ivf") as gallery:  # and whole again
        assert "rebuilt_because" not in gallery.load_search()


def test_embeddings_rewritten_under_the_same_ids_void_the_snapshot(
    filled: Path, recognizer: Recognizer
) -> None:
    with Gallery.open(filled, recognizer, search="exact") as gallery:
        gallery.load_search()
        store = gallery.store
        vectors, ids, _, _, _ = store.all_embeddings(recognizer.embedding_dim)
        # what `reembed` does: new embeddings, same ids (here: the old ones, doubled)
        store.replace_embeddings([int(i) for i in ids], 2 * vectors, {})
    with Gallery.open(filled, recognizer, search="exact") as gallery:
        status = gallery.load_search()
        assert "another model, embeddings" in status["rebuilt_because"]
        probe = torch.from_numpy(2 * vectors[:1])
        top = gallery.search.top(probe, 1)
        assert float(top.distances[0, 0]) == pytest.approx(0.0, abs=2e-3)


def test_example_ids_are_never_reused_after_the_newest_is_removed(
    tmp_path: Path, recognizer: Recognizer, digits
) -> None:
    x, _ = digits
    with Gallery.create(tmp_path / "g.sqlite", recognizer) as gallery:
        gallery.enroll("a", [x[0], x[1]])
        gallery.enroll("b", x[2])
        [b_example] = gallery.examples("b")
        gallery.remove("b")
        gallery.enroll("c", x[3])
        [c_example] = gallery.examples("c")
        assert c_example.id > b_example.id


def test_many_changes_write_a_new_snapshot(
    filled: Path, recognizer: Recognizer, digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, _ = digits
    monkeypatch.setattr(cache_module, "REWRITE_AT_LEAST", 5)
    monkeypatch.setattr(cache_module, "REWRITE_SHARE", 0.001)
    folder = filled.parent / "g.sqlite.index" / "hnsw"
    with Gallery.open(filled, recognizer, search="hnsw") as gallery:
        gallery.load_search()
        before = json.loads((folder / "meta.json").read_text())
        assert before["index"]["kind"] == "hnsw"
        for k in range(6):
            gallery.enroll(f"late {k}", x[1700 + k])
        gallery.remove("person 0")
        after = json.loads((folder / "meta.json").read_text())
        assert after["generation"] > before["generation"]
        assert gallery.identify(x[1705])[0].candidates[0].identity == "late 5"
        assert "person 0" not in [c.identity for c in gallery.identify(x[0], k=5)[0].candidates]
    with Gallery.open(filled, recognizer, search="hnsw") as gallery:
        status = gallery.load_search()
        assert "rebuilt_because" not in status and status["added_since"] == 0


def test_an_unwritable_snapshot_folder_leaves_the_search_in_memory(
    filled: Path, recognizer: Recognizer, digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, _ = digits

    def read_only(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache_module, "write_snapshot", read_only)
    with Gallery.open(filled, recognizer, search="ivf") as gallery:
        status = gallery.load_search()
        assert "Permission denied" in status["not_persisted"]
        assert gallery.identify(x[5])[0].candidates[0].identity == "person 0"


def test_a_server_gallery_keeps_its_snapshot_per_host_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIAMESE_INDEX_DIR", str(tmp_path))
    url = "postgresql://ann:s3cret@db.example:5432/faces"
    folder = index_folder(url, "2026-12-07T10:00:00", "hnsw")
    assert folder.parent.parent == tmp_path and folder.name == "hnsw"
    assert "s3cret" not in str(folder)
    assert index_folder(url, "2026-12-08T10:00:00", "hnsw") != folder  # a new gallery there
    assert index_folder(url.replace("s3cret", "other"), "2026-12-07T10:00:00", "hnsw") == folder


OPEN = """
import sys
from siamese.recognition import Gallery, Recognizer
with Gallery.open(sys.argv[1], Recognizer.load(sys.argv[2]), search="hnsw") as gallery:
    status = gallery.load_search()
    print("built" if "rebuilt_because" in status else "read")
"""


def test_processes_starting_together_build_the_snapshot_once(
    filled: Path, digits_model: Path
) -> None:
    argv = [sys.executable, "-c", OPEN, str(filled), str(digits_model)]
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    said = sorted(run.communicate(timeout=300)[0].strip() for run in runs)
    assert [run.returncode for run in runs] == [0, 0, 0]
    assert said == ["built", "read", "read"]


def test_search_for_auto_resolves_by_the_gallery_size(filled: Path, recognizer: Recognizer) -> None:
    with Gallery.open(filled, recognizer) as gallery:  # 1,200 examples: exact
        status = gallery.load_search()
        assert status["search"] == "exact" and status["asked"] == "auto"
        assert np.isfinite(gallery.identify(torch.zeros(1, 1, 8, 8))[0].candidates[0].distance)


def test_the_index_command_builds_once_then_reads_and_refuses_a_bad_target(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli_runner import run_cli

    code, out = run_cli(["gallery", "index", str(filled), "--search", "ivfpq"], capsys)
    assert code == 0, out
    assert "built: no index file yet" in out and "tuned: nprobe" in out and "target 99.90 %" in out
    code, out = run_cli(["gallery", "index", str(filled), "--search", "ivfpq", "--json"], capsys)
    status = json.loads(out)
    assert code == 0 and "rebuilt_because" not in status
    assert status["search"] == "ivfpq" and status["tuning"]["met"]
    code, out = run_cli(["gallery", "index", str(filled), "--target", "1.5"], capsys)
    assert code != 0 and "--target must be a share in (0, 1]" in out
    code, out = run_cli(["gallery", "index", str(filled), "--search", "annoy"], capsys)
    assert code != 0 and "search 'annoy' is unknown" in out


MAPS = """
import sys
from pathlib import Path
from siamese.recognition import Gallery, Recognizer
with Gallery.open(sys.argv[1], Recognizer.load(sys.argv[2]), search="ivf") as gallery:
    gallery.load_search()
    maps = Path("/proc/self/maps").read_text()
    print(" ".join(n for n in ("rows.npy", "index.faiss") if n in maps))
"""


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="Linux's /proc")
def test_workers_map_the_same_snapshot_files_instead_of_copying_them(
    filled: Path, digits_model: Path
) -> None:
    argv = [sys.executable, "-c", MAPS, str(filled), str(digits_model)]
    for _ in range(2):  # the first builds the snapshot, the second only reads it
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
        assert done.stdout.split() == ["rows.npy", "index.faiss"]


def test_a_postgres_gallery_keeps_its_snapshot_in_the_host_cache(
    postgres, digits_model: Path, digits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, _ = digits
    monkeypatch.setenv("SIAMESE_INDEX_DIR", str(tmp_path / "indexes"))
    recognizer = Recognizer.load(digits_model)
    url = postgres.database()
    with Gallery.create(url, recognizer, far=1e-2) as gallery:
        for person in range(PEOPLE):
            gallery.enroll(f"person {person}", list(x[person * EACH : (person + 1) * EACH]))
    with Gallery.open(url, recognizer, search="ivf") as gallery:
        status = gallery.load_search()
        first = _answers(gallery, list(x[1300:1320]))
    folder = Path(status["index_folder"])
    assert folder.is_relative_to(tmp_path / "indexes") and (folder / "index.faiss").is_file()
    monkeypatch.setattr(GalleryStore, "all_embeddings", lambda *_: pytest.fail("rebuilt"))
    with Gallery.open(url, recognizer, search="ivf") as gallery:
        assert "rebuilt_because" not in gallery.load_search()
        assert _answers(gallery, list(x[1300:1320])) == first


def test_a_file_where_the_snapshot_folder_belongs_leaves_the_search_in_memory(
    filled: Path, recognizer: Recognizer, digits
) -> None:
    x, _ = digits
    (filled.parent / "g.sqlite.index").write_text("not a folder")  # (root ignores modes)
    with Gallery.open(filled, recognizer, search="ivf") as gallery:
        status = gallery.load_search()
        assert "not_persisted" in status
        assert gallery.identify(x[5])[0].candidates[0].identity == "person 0"
        gallery.enroll("later", x[1700])
        assert gallery.identify(x[1700])[0].candidates[0].identity == "later"
