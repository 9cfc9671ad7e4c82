"""`siamese embed`, `compare`, `calibrate` and `siamese gallery ...` as a user runs them: real
PNG files in a known-people folder, a real SQLite gallery, JSON output read back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from siamese.data.sources import load_dataset
from tests.cli_runner import run_cli


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A known-people folder: each of the 10 digits a 'person' (a subfolder of 3 PNG
    images), and a probes folder with one more image of each."""
    root = tmp_path_factory.mktemp("people")
    data = load_dataset("digits")
    folder, probes = root / "known", root / "probes"
    folder.mkdir()
    probes.mkdir()
    for digit in range(10):
        index = np.nonzero(data.y.numpy() == digit)[0]
        person = folder / f"person{digit}"
        person.mkdir()
        for k in index[:3]:
            Image.fromarray(data.x[k, 0].numpy(), "L").save(person / f"{k}.png")
        Image.fromarray(data.x[index[10], 0].numpy(), "L").save(probes / f"person{digit}.png")
    return root


def test_gallery_commands_end_to_end(
    tmp_path: Path, people: Path, digits_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gallery = str(tmp_path / "staff.sqlite")
    code, out = run_cli(["gallery", "create", gallery, "--model", str(digits_model)], capsys)
    assert code == 0 and "threshold" in out and "FPIR 0.01" in out, out
    code, out = run_cli(
        ["gallery", "enroll", gallery, "--folder", str(people / "known"), "--json"], capsys
    )
    assert code == 0, out
    enrolled = json.loads(out)
    assert [e["identity"] for e in enrolled] == [f"person{d}" for d in range(10)]
    assert all(len(e["added"]) == 3 and e["created"] for e in enrolled)
    # again: nothing changes, and it says so
    code, out = run_cli(["gallery", "enroll", gallery, "--folder", str(people / "known")], capsys)
    assert code == 0 and "3 already enrolled (nothing changed for them)" in out, out
    probe = people / "probes" / "person3.png"
    code, out = run_cli(["gallery", "identify", gallery, str(probe), "--json", "--k", "3"], capsys)
    assert code == 0, out
    [answer] = json.loads(out)
    assert set(answer) == {
        "source",
        "identity",
        "decision",
        "distance",
        "threshold",
        "far",
        "estimated_fpir",
        "rule",
        "target",
        "generation",
        "margin",
        "score",
        "normalised_threshold",
        "ambiguous",
        "candidates",
        "no_face",
        "box",
    }
    # the threshold is the gallery's at its size (10 identities of 3 images): FPIR 1 %
    assert answer["rule"] == "fpir" and answer["target"] == 0.01
    assert answer["margin"] == pytest.approx(
        answer["candidates"][1]["distance"] - answer["candidates"][0]["distance"]
    )
    assert answer["no_face"] is False and answer["box"] is None
    assert answer["source"] == str(probe) and len(answer["candidates"]) == 3
    assert answer["decision"] in ("unknown", answer["candidates"][0]["identity"])
    code, out = run_cli(["gallery", "identify", gallery, str(people / "probes")], capsys)
    assert code == 0 and out.count("threshold") == 10, out
    code, out = run_cli(["gallery", "verify", gallery, "person3", str(probe), "--json"], capsys)
    assert code == 0 and json.loads(out)["identity"] == "person3", out
    code, out = run_cli(["gallery", "rename", gallery, "person9", "nine"], capsys)
    assert code == 0 and "renamed person9 → nine" in out
    code, out = run_cli(["gallery", "remove", gallery, "person8"], capsys)
    assert code == 0 and "removed person8 (3 image(s))" in out
    code, out = run_cli(["gallery", "list", gallery, "--json"], capsys)
    names = [p["identity"] for p in json.loads(out)]
    assert "nine" in names and "person8" not in names and len(names) == 9
    code, out = run_cli(["gallery", "stats", gallery, "--json"], capsys)
    stats = json.loads(out)
    assert stats["identities"] == 9 and stats["examples"] == 27
    assert stats["model_path"] == str(digits_model)
    assert stats["rule"] == "fpir" and stats["target"] == 0.01
    assert stats["decision_generation"] > 0 and stats["basis"]
    # it measured itself at 10 identities; with 3 images each it has genuine probes
    assert stats["self_calibrated_at"] == 10 and stats["genuine_probes"] == 30
    code, out = run_cli(["gallery", "calibrate", gallery, "--fpir", "0.1"], capsys)
    assert code == 0 and "9 identities, 27 images; rule FPIR 0.1" in out, out
    assert "expected identification rate" in out and "resting on" in out
    code, out = run_cli(["gallery", "stats", gallery, "--json"], capsys)
    after = json.loads(out)
    assert after["self_calibrated_at"] == 9 and after["genuine_probes"] == 27
    assert after["target"] == 0.1 and after["threshold"] >= stats["threshold"]


def test_gallery_errors_are_one_clear_line(
    tmp_path: Path, people: Path, digits_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gallery = str(tmp_path / "g.sqlite")
    code, out = run_cli(["gallery", "identify", gallery, str(people / "probes")], capsys)
    assert code == 1 and "no gallery there" in out and "Traceback" not in out
    run_cli(["gallery", "create", gallery, "--model", str(digits_model)], capsys)
    code, out = run_cli(["gallery", "create", gallery, "--model", str(digits_model)], capsys)
    assert code == 1 and "already there" in out
    code, out = run_cli(["gallery", "remove", gallery, "nobody"], capsys)
    assert code == 1 and "no identity 'nobody'" in out
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    good = people / "known" / "person0"
    code, out = run_cli(["gallery", "enroll", gallery, "ada", str(good), str(bad)], capsys)
    assert code == 1 and "bad.png" in out and "Traceback" not in out
    code, out = run_cli(["gallery", "list", gallery, "--json"], capsys)
    assert json.loads(out) == []  # nothing of the failed call was written
    code, out = run_cli(["gallery", "enroll", gallery, "ada"], capsys)
    assert code == 1 and "NAME IMAGE" in out
    code, out = run_cli(
        ["gallery", "enroll", gallery, "ada", str(good), "--metadata", "{oops"], capsys
    )
    assert code == 1 and "--metadata: not JSON" in out


def test_embed_compare_and_calibrate(
    tmp_path: Path, people: Path, digits_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "z.npz"
    code, out = run_cli(
        ["embed", str(digits_model), str(people / "known"), "--out", str(out_file), "--quiet"],
        capsys,
    )
    assert code == 0 and "30 embeddings (16-d)" in out, out
    saved = np.load(out_file)
    assert saved["embeddings"].shape == (30, 16) and len(saved["paths"]) == 30
    assert saved["paths"][0].endswith(".png")
    a = people / "known" / "person1"
    first, second = sorted(a.iterdir())[:2]
    code, out = run_cli(["compare", str(digits_model), str(first), str(first), "--json"], capsys)
    result = json.loads(out)
    assert code == 0 and result["same"] is True and result["distance"] < 1e-3
    code, out = run_cli(["compare", str(digits_model), str(first), str(second)], capsys)
    assert code == 0 and ("same:" in out or "different:" in out) and "threshold" in out
    model = tmp_path / "model"
    shutil.copytree(digits_model, model)
    code, out = run_cli(
        [
            "calibrate",
            str(model),
            "--data",
            f"folder:{people / 'known'}",
            "--far",
            "1e-3",
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, out
    assert "calibrated on folder:" in out and "10 classes, 30 examples" in out
    assert "a threshold at 0.001 needs 10,000" in out  # 405 impostor pairs: warned
    thresholds = json.loads((model / "model.json").read_text())["thresholds"]
    assert thresholds["impostor_pairs"] == 405 and thresholds["genuine_pairs"] == 30
    assert thresholds["fpir"]["sizes"][0] == 1 and thresholds["fpir"]["probes"] == 30
    code, out = run_cli(["calibrate", str(model), "--data", "digits", "--quiet"], capsys)
    assert code == 0 and "5 of the digits classes were trained on" in out, out
    # the run's own validation classes again: what training measured, FPIR table included
    code, out = run_cli(["calibrate", str(model), "--data", "validation", "--quiet"], capsys)
    assert code == 0 and "the run's validation classes (5 classes, 890 examples" in out, out
    again = json.loads((model / "model.json").read_text())["thresholds"]
    trained = json.loads((digits_model / "model.json").read_text())["thresholds"]
    assert again["at_far"] == trained["at_far"] and again["fpir"] == trained["fpir"]
    code, out = run_cli(
        ["calibrate", str(tmp_path / "nowhere"), "--data", "validation", "--quiet"], capsys
    )
    assert code == 1 and "Traceback" not in out


def test_embed_refuses_an_unknown_format_and_parquet_without_pyarrow(
    tmp_path: Path, people: Path, digits_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(
        ["embed", str(digits_model), str(people / "probes"), "--out", str(tmp_path / "z.csv")],
        capsys,
    )
    assert code == 1 and "write .npz or .parquet" in out
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        target = tmp_path / "z.parquet"
        code, out = run_cli(
            ["embed", str(digits_model), str(people / "probes"), "--out", str(target)], capsys
        )
        assert code == 1 and "needs pyarrow" in out and not target.exists()


def test_gallery_reembed_from_the_command_line(
    tmp_path: Path, people: Path, digits_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gallery = str(tmp_path / "kept.sqlite")
    run_cli(["gallery", "create", gallery, "--model", str(digits_model), "--keep-images"], capsys)
    code, out = run_cli(
        ["gallery", "enroll", gallery, "ada", str(people / "known" / "person0")], capsys
    )
    assert code == 0, out
    model = tmp_path / "copy"
    shutil.copytree(digits_model, model)  # the same weights in another folder
    code, out = run_cli(["gallery", "reembed", gallery, "--model", str(model)], capsys)
    assert code == 0 and "re-embedded 3 image(s)" in out, out
    code, out = run_cli(["gallery", "stats", gallery, "--json"], capsys)
    assert json.loads(out)["model_path"] == str(model)
    probe = sorted((people / "known" / "person0").iterdir())[0]
    code, out = run_cli(["gallery", "identify", gallery, str(probe), "--json"], capsys)
    assert json.loads(out)[0]["decision"] == "ada"


def test_embed_with_workers_and_repeats_lists_every_file_once_in_input_order(
    tmp_path: Path, people: Path, digits_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = tmp_path / "plain.npz"
    code, out = run_cli(
        ["embed", str(digits_model), str(people / "known"), "--out", str(one), "--quiet"], capsys
    )
    assert code == 0, out
    repeated = tmp_path / "workers.npz"
    first = sorted((people / "known" / "person0").iterdir())[0]
    argv = ["embed", str(digits_model), str(people / "known"), str(first), "--out", str(repeated)]
    code, out = run_cli([*argv, "--workers", "2", "--batch-size", "4", "--quiet"], capsys)
    assert code == 0 and "30 embeddings" in out, out
    a, b = np.load(one), np.load(repeated)
    assert list(a["paths"]) == list(b["paths"])
    np.testing.assert_allclose(a["embeddings"], b["embeddings"], atol=1e-5)


def test_embed_names_a_bad_file_found_by_a_worker(
    tmp_path: Path, people: Path, digits_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "images"
    shutil.copytree(people / "probes", folder)
    (folder / "broken.png").write_bytes(b"not a png at all")
    out_file = tmp_path / "z.npz"
    argv = ["embed", str(digits_model), str(folder), "--out", str(out_file), "--workers", "2"]
    code, out = run_cli([*argv, "--quiet"], capsys)
    assert code == 1 and "broken.png" in out and "Traceback" not in out, out
    assert not out_file.exists()


@pytest.mark.slow
def test_torchrun_two_processes_embed_what_one_process_embeds(
    tmp_path: Path, people: Path, digits_model: Path
) -> None:
    """`torchrun --nproc_per_node=2 -m siamese embed` on loopback: one output with every path
    once, in input order, equal to the one-process output."""
    import subprocess
    import sys

    # 31 files: the two shares differ in size.
    argv = [str(digits_model), str(people / "known"), str(people / "probes" / "person3.png")]
    single, double = tmp_path / "one.npz", tmp_path / "two.npz"
    base = [sys.executable, "-m", "siamese", "embed", *argv, "--quiet", "--batch-size", "4"]
    done = subprocess.run([*base, "--out", str(single)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command = [*torchrun, "-m", "siamese", "embed", *argv, "--quiet", "--batch-size", "4"]
    done = subprocess.run(
        [*command, "--out", str(double)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "31 embeddings (16-d)" in done.stdout and "(2 processes)" in done.stdout
    a, b = np.load(single), np.load(double)
    assert len(a["paths"]) == 31 and len(set(a["paths"])) == 31
    assert list(a["paths"]) == list(b["paths"])
    np.testing.assert_allclose(a["embeddings"], b["embeddings"], atol=1e-5)
    assert str(b["model_fingerprint"]) == str(a["model_fingerprint"])


@pytest.mark.slow
def test_torchrun_embed_with_a_bad_file_in_one_share_fails_on_every_process(
    tmp_path: Path, people: Path, digits_model: Path
) -> None:
    """The bad file lies in the second process's share: both processes stop with its name,
    neither waits for the other, and nothing is written."""
    import subprocess
    import sys

    folder = tmp_path / "images"
    shutil.copytree(people / "probes", folder)
    (folder / "zz_broken.png").write_bytes(b"not a png at all")
    target = tmp_path / "z.npz"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command = [*torchrun, "-m", "siamese", "embed", str(digits_model), str(folder)]
    done = subprocess.run(
        [*command, "--out", str(target), "--quiet"], capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "process 1:" in output and "zz_broken.png" in output
    assert not target.exists()
