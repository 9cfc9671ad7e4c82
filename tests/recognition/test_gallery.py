"""`Gallery` on a real SQLite file: enrollment all or nothing, identification against a
brute-force float64 search, open-set decisions at the model's calibrated threshold, and
real processes enrolling at once or killed halfway."""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from siamese.data.sources import load_dataset
from siamese.errors import ConfigError, DataError
from siamese.recognition import Gallery, Recognizer
from siamese.recognition.decisions import identification_basis
from siamese.recognition.gallery_store import SCHEMA_VERSION, GalleryStore

# An image against itself: the search's distances come from ‖a‖² + ‖b‖² − 2a·b in float32,
# whose cancellation leaves up to about sqrt(1e-7) ≈ 3e-4 at distance 0 on unit vectors.
ZERO = 1e-3


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_dataset("digits")
    return data.x, data.y


@pytest.fixture
def recognizer(digits_model: Path) -> Recognizer:
    return Recognizer.load(digits_model)


def _png(folder: Path, name: str, pixels: torch.Tensor) -> Path:
    path = folder / f"{name}.png"
    Image.fromarray(pixels[0].numpy(), "L").save(path)
    return path


def _brute_force(
    recognizer: Recognizer, gallery_z: dict[str, torch.Tensor], probe: torch.Tensor, centroid: bool
) -> list[tuple[str, float]]:
    """Each identity's score for one probe embedding, in float64, best first."""
    scores = []
    for name, z in gallery_z.items():
        refs = z.double().mean(dim=0, keepdim=True) if centroid else z.double()
        d = (refs - probe.double()).norm(dim=1)
        scores.append((name, float(d.min())))
    return sorted(scores, key=lambda s: s[1])


@pytest.mark.parametrize("scoring", ["nearest", "centroid"])
def test_identify_ranks_identities_as_a_brute_force_search_does(
    tmp_path: Path, recognizer: Recognizer, digits, scoring: str
) -> None:
    x, y = digits
    gallery = Gallery.create(
        tmp_path / "g.sqlite", recognizer, scoring=scoring, normalisation="ratio"
    )
    enrolled: dict[str, torch.Tensor] = {}
    for digit in range(10):
        examples = x[y == digit][:3]
        gallery.enroll(f"digit {digit}", list(examples))
        enrolled[f"digit {digit}"] = recognizer.embed(examples)
    probes = x[200:230]
    answers = gallery.identify(list(probes), k=4)
    z = recognizer.embed(probes)
    # the decision on the best distance as a ratio to the mean of the next five
    assert gallery.normalisation == "ratio" and gallery.decision.normalised_threshold is not None
    for answer, probe in zip(answers, z, strict=True):
        ranked = _brute_force(recognizer, enrolled, probe, scoring == "centroid")
        expected = ranked[:4]
        assert [c.identity for c in answer.candidates] == [name for name, _ in expected]
        for c, (_, d) in zip(answer.candidates, expected, strict=True):
            assert c.distance == pytest.approx(d, abs=1e-5)
        ratio = ranked[0][1] / (sum(d for _, d in ranked[1:6]) / 5)
        assert answer.score == pytest.approx(ratio, rel=1e-4)
        accepted = answer.score <= gallery.decision.normalised_threshold
        assert answer.identity == (answer.candidates[0].identity if accepted else None)
        assert answer.label == (answer.identity or "unknown")
        assert answer.threshold == gallery.threshold and answer.far == gallery.far
    gallery.close()


def test_an_enrolled_image_is_recognised_and_the_decision_states_its_threshold(
    tmp_path: Path, recognizer: Recognizer, digits
) -> None:
    x, _ = digits
    ada = _png(tmp_path, "ada", x[0])
    with Gallery.create(tmp_path / "g.sqlite", recognizer, far=1e-2) as gallery:
        result = gallery.enroll("ada", ada, metadata={"team": "engines"})
        assert result.created and result.added == [str(ada)]
        gallery.enroll("bob", x[1])
        [answer] = gallery.identify(ada)
        assert answer.identity == "ada" and answer.distance == pytest.approx(0, abs=ZERO)
        assert answer.far == 1e-2 and answer.threshold == recognizer.threshold(1e-2)[0]
        as_json = answer.as_dict()
        assert as_json["decision"] == "ada" and as_json["far"] == 1e-2
        assert json.loads(json.dumps(as_json)) == as_json
        verdict = gallery.verify("ada", ada)
        assert verdict.same and verdict.distance == pytest.approx(0, abs=ZERO)
        assert gallery.identities()[0].metadata == {"team": "engines"}


def test_a_stranger_beyond_the_threshold_is_unknown(
    tmp_path: Path, recognizer: Recognizer, digits
) -> None:
    x, y = digits
    with Gallery.create(tmp_path / "g.sqlite", recognizer) as gallery:
        gallery.enroll("zero", list(x[y == 0][:5]))
        answers = gallery.identify(list(x[y == 7][:20]))
        for answer in answers:
            if answer.distance > gallery.threshold:
                assert answer.identity is None and answer.label == "unknown"
                assert answer.candidates[0].identity == "zero"  # still listed, not accepted
    with Gallery.create(tmp_path / "empty.sqlite", recognizer) as empty:
        [answer] = empty.identify(x[0])
        assert answer.identity is None and answer.candidates == []


def test_enrollment_is_all_or_nothing_when_an_image_is_bad(
    tmp_path: Path, recognizer: Recognizer, digits
) -> None:
    x, _ = digits
    good = _png(tmp_path, "good", x[0])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with Gallery.create(tmp_path / "g.sqlite", recognizer) as gallery:
        with pytest.raises(DataError, match=r"bad\.png"):
            gallery.enroll("ada", [good, bad])
        assert gallery.identities() == [] and gallery.stats()["examples"] == 0


def test_duplicates_are_a_no_op_for_one_identity_and_refused_for_another(
    tmp_path: Path, recognizer: Recognizer, digits
) -> None:
    x, _ = digits
    photo = _png(tmp_path, "photo", x[0])
    copy = tmp_path / "copy.png"
    shutil.copy(photo, copy)
    with Gallery.create(tmp_path / "g.sqlite", recognizer) as gallery:
        gallery.enroll("ada", photo)
        again = gallery.enroll("ada", [copy, photo])  # same bytes, other name: same image
        assert again.added == [] and again.already_enrolled == [str(copy), str(photo)]
        assert not again.created
        with pytest.raises(DataError, match=r"photo\.png \(enrolled as ada\).*force"):
            gallery.enroll("bob", photo)
        assert [i.name for i in gallery.identities()] == ["ada"]
        forced = gallery.enroll("bob", photo, force=True)
        assert forced.added == [str(photo)]
        assert {i.name: i.examples for i in gallery.identities()} == {"ada": 1, "bob": 1}


def test_remove_rename_and_merge(tmp_path: Path, recognizer: Recognizer, digits) -> None:
    x, _ = digits
    with Gallery.create(tmp_path / "g.sqlite", recognizer) as gallery:
        gallery.enroll("ada", [x[0], x[1]])
        gallery.enroll("bob", [x[2]])
        gallery.enroll("carl", [x[1], x[3]], force=True)
        assert gallery.identify(x[2])[0].identity in ("bob", None)
        assert gallery.rename("bob", "robert") is False
        assert [i.name for i in gallery.identities()] == ["ada", "carl", "robert"]
        assert gallery.identify(x[2])[0].candidates[0].identity == "robert"
        # carl merges into ada: x[1], which both had, is kept once
        assert gallery.rename("carl", "ada") is True
        assert {i.name: i.examples for i in gallery.identities()} == {"ada": 3, "robert": 1}
        assert gallery.identify(x[3])[0].candidates[0].identity == "ada"
        assert gallery.remove("robert") == 1
        assert gallery.identify(x[2])[0].candidates[0].identity == "ada"
        assert len(gallery.examples("ada")) == 3
        with pytest.raises(DataError, match=r"no identity 'ADA'.*did you mean 'ada'"):
            gallery.remove("ADA")
        stats = gallery.stats()
        assert stats["identities"] == 1 and stats["examples"] == 3
        assert stats["schema_version"] == SCHEMA_VERSION


def test_a_gallery_persists_and_refuses_another_model(
    tmp_path: Path, recognizer: Recognizer, digits, digits_model: Path
) -> None:
    x, _ = digits
    path = tmp_path / "g.sqlite"
    with Gallery.create(path, recognizer, far=1e-2) as gallery:
        gallery.enroll("ada", x[0])
    with Gallery.open(path, recognizer) as gallery:
        assert gallery.identify(x[0])[0].identity == "ada"
        assert gallery.far == 1e-2
    other_dir = tmp_path / "other_model"
    shutil.copytree(digits_model, other_dir)
    other = Recognizer.load(other_dir)
    other.model.projection.bias.data += 1.0  # another model: other weights
    from siamese.models.files import save_model

    description = json.loads((other_dir / "model.json").read_text())
    extra = {k: v for k, v in description.items() if k in ("metric", "thresholds")}
    save_model(other_dir, other.model, tuple(description["input_shape"]), extra)
    with pytest.raises(ConfigError, match=r"holds embeddings of model.*reembed"):
        Gallery.open(path, Recognizer.load(other_dir))
    with pytest.raises(ConfigError, match="already there"):
        Gallery.create(path, recognizer)


def test_opening_what_is_not_a_current_gallery_says_why(
    tmp_path: Path, recognizer: Recognizer
) -> None:
    with pytest.raises(ConfigError, match=r"no gallery there.*siamese gallery create"):
        Gallery.open(tmp_path / "missing.sqlite", recognizer)
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a database\n" * 50)
    with pytest.raises(ConfigError, match="not a gallery database"):
        Gallery.open(text, recognizer)
    path = tmp_path / "g.sqlite"
    Gallery.create(path, recognizer).close()
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE gallery_settings SET value = ? WHERE key = 'schema_version'",
            (json.dumps(SCHEMA_VERSION + 1),),
        )
    with pytest.raises(ConfigError, match=r"newer siamese.*upgrade siamese"):
        Gallery.open(path, recognizer)
    with pytest.raises(ConfigError, match="FAR 1e-06 is not supported"):
        Gallery.create(tmp_path / "strict.sqlite", recognizer, far=1e-6)


def test_the_database_is_sqlite_in_wal_mode_with_foreign_keys(
    tmp_path: Path, recognizer: Recognizer, digits
) -> None:
    x, _ = digits
    path = tmp_path / "g.sqlite"
    with Gallery.create(path, recognizer) as gallery:
        gallery.enroll("ada", [x[0], x[1]])
        gallery.remove("ada")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM examples").fetchone()[0] == 0  # cascaded
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_reembed_moves_a_gallery_with_its_images_to_another_model(
    tmp_path: Path, recognizer: Recognizer, digits, digits_model: Path
) -> None:
    x, _ = digits
    photo = _png(tmp_path, "photo", x[5])
    path = tmp_path / "g.sqlite"
    with Gallery.create(path, recognizer, keep_images=True) as gallery:
        gallery.enroll("ada", [photo, x[6]])
    with Gallery.create(tmp_path / "plain.sqlite", recognizer) as plain:
        with pytest.raises(ConfigError, match="did not keep its images"):
            plain.reembed(recognizer)
    other_dir = tmp_path / "other"
    shutil.copytree(digits_model, other_dir)
    other = Recognizer.load(other_dir)
    other.model.projection.weight.data *= 2.0
    from siamese.models.files import save_model

    description = json.loads((other_dir / "model.json").read_text())
    extra = {k: v for k, v in description.items() if k in ("metric", "thresholds")}
    save_model(other_dir, other.model, tuple(description["input_shape"]), extra)
    other = Recognizer.load(other_dir)
    with Gallery.open(path, recognizer) as gallery:
        assert gallery.reembed(other) == 2
    with Gallery.open(path, other) as gallery:
        [answer] = gallery.identify(photo)
        assert answer.identity == "ada" and answer.distance == pytest.approx(0, abs=ZERO)
        [answer] = gallery.identify(x[6])
        assert answer.distance == pytest.approx(0, abs=ZERO)


def test_faiss_search_agrees_with_exact_search(
    tmp_path: Path, recognizer: Recognizer, digits
) -> None:
    pytest.importorskip("faiss")
    x, y = digits
    path = tmp_path / "g.sqlite"
    with Gallery.create(path, recognizer) as gallery:
        for digit in range(10):
            gallery.enroll(str(digit), list(x[y == digit][:20]))
        exact = gallery.identify(list(x[1000:1100]), k=3)
    with Gallery.open(path, recognizer, search="faiss") as fast:
        approx = fast.identify(list(x[1000:1100]), k=3)
        # updates on enroll and remove keep the index in step with the database
        fast.enroll("extra", x[1000])
        assert fast.identify(x[1000])[0].candidates[0].identity == "extra"
        fast.remove("extra")
        assert fast.identify(x[1000])[0].candidates[0].identity == exact[0].candidates[0].identity
    for a, b in zip(exact, approx, strict=True):
        assert [c.identity for c in a.candidates] == [c.identity for c in b.candidates]
        for ca, cb in zip(a.candidates, b.candidates, strict=True):
            assert ca.distance == pytest.approx(cb.distance, abs=1e-4)


# ----------------------------------------------------------------------------------------
# Real processes


def _enroll_many(args: tuple[str, str, int, int]) -> None:
    location, model, first, count = args
    data = load_dataset("digits")
    recognizer = Recognizer.load(model)
    with Gallery.open(location, recognizer) as gallery:
        for k in range(first, first + count):
            gallery.enroll(f"person {k}", [data.x[2 * k], data.x[2 * k + 1]])


@pytest.mark.slow
def test_two_processes_enrolling_at_once_lose_nothing(
    tmp_path: Path, recognizer: Recognizer, digits_model: Path
) -> None:
    path = tmp_path / "g.sqlite"
    Gallery.create(path, recognizer).close()
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        pool.map(
            _enroll_many,
            [(str(path), str(digits_model), 0, 40), (str(path), str(digits_model), 40, 40)],
        )
    with Gallery.open(path, recognizer) as gallery:
        people = gallery.identities()
        assert len(people) == 80 and all(p.examples == 2 for p in people)
        # 80 enrollments, and the gallery measuring itself as it grew (from 10 identities,
        # at every 10 %): each a counted write
        assert gallery.store.generation() >= 80
        # the threshold was derived inside the last write, for all 80 identities
        assert gallery.decision.generation == gallery.store.generation()
        assert gallery.stats()["self_calibrated_at"] >= 72


_KILL_CHILD = """
import sys
from siamese.data.sources import load_dataset
from siamese.recognition import Gallery, Recognizer
location, model = sys.argv[1], sys.argv[2]
data = load_dataset("digits")
recognizer = Recognizer.load(model)
with Gallery.open(location, recognizer) as gallery:
    print("ready", flush=True)
    for k in range(10_000):
        gallery.enroll(f"batch {k}", list(data.x[(k * 50) % 1700 : (k * 50) % 1700 + 50]),
                       force=True)
"""


@pytest.mark.slow
def test_a_process_killed_while_enrolling_leaves_the_gallery_consistent(
    tmp_path: Path, recognizer: Recognizer, digits_model: Path
) -> None:
    path = tmp_path / "g.sqlite"
    Gallery.create(path, recognizer).close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for delay in (1.0, 1.37, 1.71, 2.13):
        child = subprocess.Popen(
            [sys.executable, "-c", _KILL_CHILD, str(path), str(digits_model)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            sizes = db.execute(
                "SELECT count(e.id) FROM identities i LEFT JOIN examples e "
                "ON e.identity_id = i.id GROUP BY i.id"
            ).fetchall()
        # every enrollment that committed holds its 50 examples; none holds part of them
        assert sizes and all(n == 50 for (n,) in sizes), sizes
    with Gallery.open(path, recognizer) as gallery:
        stats = gallery.stats()
        assert stats["examples"] == 50 * stats["identities"]
        assert gallery.identify(recognizer.prepare(load_dataset("digits").x[0]))[0].candidates


def test_a_refused_write_is_one_clear_error_and_stores_nothing(
    tmp_path: Path, recognizer: Recognizer, digits
) -> None:
    from siamese.errors import OutputError
    from siamese.recognition.gallery_store import GalleryStore, make_engine

    x, _ = digits
    path = tmp_path / "g.sqlite"
    Gallery.create(path, recognizer).close()
    read_only = GalleryStore(make_engine(f"sqlite:///file:{path}?mode=ro&uri=true"), str(path))
    gallery = Gallery(read_only, recognizer)
    with pytest.raises(OutputError, match=r"refused the write.*nothing of it was stored"):
        gallery.enroll("ada", x[0])
    gallery.close()
    with Gallery.open(path, recognizer) as again:
        assert again.identities() == []


@pytest.mark.parametrize(("identities", "per_identity"), [(50, 4), (3, 2000)])
def test_exact_search_by_candidates_or_by_reduction_matches_brute_force(
    identities: int, per_identity: int
) -> None:
    # 4 examples each: the k best identities are found among the 4k nearest examples;
    # 2,000 each: more candidates than the search keeps, so it reduces per identity.
    from siamese.recognition.gallery_search import ExactSearch

    g = torch.Generator().manual_seed(5)
    m = identities * per_identity
    vectors = torch.randn(m, 8, generator=g)
    owners = torch.arange(identities).repeat_interleave(per_identity) * 7 + 3
    search = ExactSearch("euclidean", "nearest", 8)
    search.reset(vectors.numpy(), np.arange(m) + 1, owners.numpy())
    queries = torch.randn(20, 8, generator=g)
    top = search.top(queries, 3)
    d = torch.cdist(queries.double(), vectors.double())
    for q in range(20):
        best: dict[int, float] = {}
        for j in range(m):
            o = int(owners[j])
            best[o] = min(best.get(o, math.inf), float(d[q, j]))
        expected = sorted(best.items(), key=lambda item: item[1])[:3]
        assert top.identity_ids[q].tolist() == [o for o, _ in expected]
        assert top.distances[q].tolist() == pytest.approx([v for _, v in expected], abs=1e-4)


def test_a_database_url_that_cannot_work_is_one_clear_error(
    tmp_path: Path, recognizer: Recognizer
) -> None:
    with pytest.raises(ConfigError, match="not a database URL SQLAlchemy knows"):
        Gallery.create("nosuchdb://somewhere/g", recognizer)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"needs its Python driver.*psycopg"):
            Gallery.create("postgresql://user@127.0.0.1:1/gallery", recognizer)


# ------------------------------------------------------------------------------------------
# Decisions by FPIR for the gallery's size


def test_a_new_gallery_decides_at_fpir_1_percent_and_its_threshold_follows_its_size(
    tmp_path: Path, recognizer: Recognizer, digits
) -> None:
    x, _y = digits
    table = recognizer.thresholds.fpir_table
    assert table is not None
    with Gallery.create(tmp_path / "g.sqlite", recognizer) as gallery:
        assert gallery.rule == ("fpir", 0.01)
        seen = []
        for k in range(8):
            done = gallery.enroll(f"p{k}", [x[2 * k], x[2 * k + 1]])
            # derived inside the write, for the gallery as the write left it
            assert done.decision is not None
            assert done.decision.generation == gallery.store.generation()
            expected = table.threshold(0.01, 2 * (k + 1))  # nearest: 2 examples each
            assert expected is not None and done.decision.threshold == pytest.approx(expected[0])
            seen.append(done.decision.threshold)
        assert all(a >= b for a, b in itertools.pairwise(seen)) and seen[0] > seen[-1]
        [answer] = gallery.identify(x[:1])
        assert answer.decision == gallery.decision and answer.decision.rule == "fpir"
        assert answer.decision.estimated_fpir is not None
        assert answer.decision.estimated_fpir <= 0.01 * 1.01
        assert "model's calibration" in answer.decision.basis
        gallery.remove("p7")
        assert gallery.threshold == pytest.approx(seen[-2])
        # another process's write moves this gallery's threshold at its next read
        with Gallery.open(tmp_path / "g.sqlite", recognizer) as other:
            other.enroll("p9", [x[40], x[41], x[42], x[43]])
            moved = other.threshold
        [answer] = gallery.identify(x[:1])
        assert answer.threshold == pytest.approx(moved) and moved < seen[-2]
        assert answer.decision.generation == gallery.store.generation()


def test_an_answer_gives_the_margin_to_the_runner_up_and_flags_two_within_the_threshold(
    tmp_path: Path, recognizer: Recognizer, digits
) -> None:
    x, _ = digits
    with Gallery.create(tmp_path / "g.sqlite", recognizer, fpir=0.1) as gallery:
        gallery.enroll("ada", [x[0]])
        gallery.enroll("ada's twin", [x[0]], force=True)  # the same photo under two names
        gallery.enroll("bob", [x[5]])
        [twin] = gallery.identify(x[:1], k=1)
        assert twin.identity in ("ada", "ada's twin") and twin.ambiguous
        assert twin.margin == pytest.approx(0.0, abs=ZERO) and len(twin.candidates) == 1
        [other] = gallery.identify(x[5:6])
        assert other.identity == "bob" and not other.ambiguous
        assert other.margin == pytest.approx(
            other.candidates[1].distance - other.candidates[0].distance
        )
        body = other.as_dict()
        assert body["ambiguous"] is False and body["estimated_fpir"] is not None
        assert body["rule"] == "fpir" and body["target"] == 0.1


def test_the_gallery_measures_itself_on_its_own_people(
    tmp_path: Path, recognizer: Recognizer, digits
) -> None:
    x, _y = digits
    with Gallery.create(
        tmp_path / "g.sqlite", recognizer, fpir=0.1, normalisation="none"
    ) as gallery:
        gallery.enroll("only", [x[0]])
        with pytest.raises(ConfigError, match="at least two"):
            gallery.calibrate()
        for k in range(1, 9):  # fewer than 10: not measured on its own
            gallery.enroll(f"p{k}", [x[3 * k], x[3 * k + 1]])
        assert gallery.stats()["self_calibrated_at"] is None
        gallery.enroll("p9", [x[40]])  # 10 identities: it measures itself
        stats = gallery.stats()
        assert stats["self_calibrated_at"] == 10 and stats["genuine_probes"] == 16
        assert stats["expected_identification_rate"] is not None
        # 10 identities cannot support 10 % by themselves: the model's table decides, and
        # the basis says how many identities its own estimate needs
        assert "alone from about 50 identities" in stats["basis"]
        assert "own 10 identities" in stats["basis"] and "model's calibration" in stats["basis"]
        for k in range(10, 60):
            gallery.enroll(f"p{k}", [x[100 + k]])
        stats = gallery.stats()
        assert stats["self_calibrated_at"] >= 55
        assert "this gallery's own" in stats["basis"] and "alone" not in stats["basis"]
        own = gallery._own()
        assert own is not None
        # the pooled estimate at the threshold: the gallery's own strangers, and the model's
        # counting as the 50 the gallery needs to support 10 % alone
        n, probes = stats["identities"], own.strangers.probes
        own_rate, _ = own.strangers.rate_at(stats["threshold"], n)
        table = recognizer.thresholds.fpir_table
        model_rate = table.rate_at(stats["threshold"], stats["examples"])
        pooled = (probes * own_rate + 50 * model_rate) / (probes + 50)
        assert stats["estimated_fpir"] == pytest.approx(pooled, rel=1e-6) and pooled <= 0.1
        with pytest.raises(ConfigError, match="give one of"):
            gallery.set_rule()
        # on normalised scores: the gallery's own strangers and the model's simulated ones,
        # pooled, the gallery's weighing more than the model's past 50 identities
        rule = identification_basis(
            "fpir", 0.1, stats["identities"], stats["examples"], "nearest",
            recognizer.thresholds, own, 0, "ratio",
        )  # fmt: skip
        assert rule.normalised_threshold is not None
        assert f"own {own.identities} identities" in rule.basis and "weight" in rule.basis
        assert rule.estimated_fpir is not None and rule.estimated_fpir <= 0.1
        own_share = float((own.normalised_strangers("ratio") <= rule.normalised_threshold).mean())
        assert abs(own_share - 0.1) < 0.1  # the gallery's own strangers near the target
        gallery.set_rule(far=0.01)
        assert gallery.stats()["rule"] == "far"
        assert gallery.threshold == recognizer.thresholds.at_far[0.01]


def test_a_gallery_made_before_fpir_rules_keeps_its_pair_threshold(
    tmp_path: Path, recognizer: Recognizer, digits
) -> None:
    x, _ = digits
    path = tmp_path / "old.sqlite"
    with Gallery.create(path, recognizer, far=0.01) as gallery:
        threshold = gallery.threshold
    with sqlite3.connect(path) as db:  # as an older siamese wrote it: no rule, no decision
        db.execute(
            "DELETE FROM gallery_settings WHERE key IN "
            "('rule', 'target', 'decision', 'self_calibration')"
        )
    with Gallery.open(path, recognizer) as gallery:
        assert gallery.rule == ("far", 0.01) and gallery.threshold == threshold
        for k in range(12):
            gallery.enroll(f"p{k}", [x[k]])
        [answer] = gallery.identify(x[:1])
        assert answer.threshold == threshold and answer.decision.rule == "far"
        assert gallery.stats()["self_calibrated_at"] is None


def test_a_stored_embedding_of_another_size_is_named_as_damage(
    tmp_path: Path, recognizer: Recognizer, digits
) -> None:
    """The bulk read of every embedding (one join of the blobs) still checks each one."""
    x, _ = digits
    location = tmp_path / "g.sqlite"
    with Gallery.create(location, recognizer) as gallery:
        gallery.enroll("ada", [x[0], x[1]])
        gallery.enroll("bob", [x[2]])
        ids = [row[0] for row in sqlite3.connect(location).execute("SELECT id FROM examples")]
    vectors, example_ids, owners, names, _ = GalleryStore.open(str(location)).all_embeddings(
        recognizer.embedding_dim
    )
    assert example_ids.tolist() == sorted(ids) and len(set(owners.tolist())) == 2
    assert sorted(names.values()) == ["ada", "bob"] and vectors.dtype == np.float32
    expected = recognizer.embed([x[0], x[1], x[2]]).numpy()
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-6)
    with sqlite3.connect(location) as db:
        db.execute("UPDATE examples SET embedding = ? WHERE id = ?", (b"\0" * 12, ids[1]))
    with Gallery.open(location, recognizer) as gallery:
        with pytest.raises(DataError, match=rf"example {ids[1]} holds a 3-d embedding.*damaged"):
            gallery.identify([x[0]])
