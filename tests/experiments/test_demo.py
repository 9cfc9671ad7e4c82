"""The quick start end to end: a short demo run into a temporary directory, through the same
`train_run` + `evaluate_run` pipeline as every recipe."""

import json

import pytest
import yaml

from siamese.config import load_config
from siamese.experiments.demo import DEMO_RECIPE
from tests.cli_runner import run_cli


def test_the_demo_runs_the_glyphs_recipe_of_configs(repo_root) -> None:
    assert DEMO_RECIPE.resolve() == (repo_root / "configs" / "glyphs_triplet.yaml").resolve()
    config = load_config(DEMO_RECIPE)
    assert config.data.name == "glyphs" and config.data.validation == "classes"


@pytest.mark.slow
def test_demo_writes_report_metrics_and_figures(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    code, printed = run_cli(["demo", "--out", str(out), "--epochs", "1", "--quiet"], capsys)
    assert code == 0, printed
    assert f"report: {out / 'evaluation' / 'report.md'}" in printed
    summary = json.loads((out / "demo.json").read_text())
    document = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert document["summary"]["oneshot_5way"] == summary["oneshot_5way"]
    assert summary["unseen_verification_auc"] >= 0.9
    # What training adds: the embedding beats raw pixels by a wide margin.
    assert summary["unseen_verification_auc"] > summary["raw_pixels_verification_auc"] + 0.15
    assert summary["oneshot_5way"] > summary["raw_pixels_oneshot_5way"] + 0.2
    # The threshold was chosen on validation characters, and decides most held-out pairs.
    assert 0 < summary["unseen_threshold"] < 2 and summary["unseen_verification_accuracy"] > 0.8
    # Episodes draw support and query from different fonts.
    assert document["metrics"]["fewshot"]["support and queries"] == "from different groups"
    for name in ("embedding", "training", "roc", "oneshot"):
        png = out / "evaluation" / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    report = (out / "evaluation" / "report.md").read_text()
    assert report.startswith("# siamese demo")
    assert "figures/roc.png" in report and f"{summary['unseen_verification_auc']:.3f}" in report
    assert (out / "model.safetensors").is_file() and (out / "config.yaml").is_file()
    # The run is an ordinary run: its config is the recipe's, with the demo's epochs.
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["train"]["epochs"] == 1 and config["data"]["name"] == "glyphs"
    split = json.loads((out / "split.json").read_text())
    trained = set(split["parts"]["train"]["class_names"])
    validation = set(split["parts"]["validation"]["class_names"])
    held_out_line = next(line for line in report.splitlines() if line.startswith("- Held out: "))
    held_out = set(held_out_line.removeprefix("- Held out: ").split())
    assert len(held_out) == 40 and not held_out & trained and not held_out & validation

    # A second demo into the same folder replaces the first as a whole.
    code, printed = run_cli(
        ["demo", "--out", str(out), "--epochs", "1", "--quiet", "--seed", "1"], capsys
    )
    assert code == 0, printed
    assert json.loads((out / "demo.json").read_text())["seed"] == 1
    log = (out / "train.log").read_text()
    assert log.count("training convnet on glyphs") == 1


def test_demo_refuses_a_folder_holding_a_training_run_or_other_files(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "model.json").write_text("{}")
    code, printed = run_cli(["demo", "--out", str(run), "--quiet"], capsys)
    assert code == 1 and "not an earlier demo" in printed and "--force" in printed
    assert (run / "model.json").read_text() == "{}"

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, printed = run_cli(["demo", "--out", str(mine), "--quiet", "--force"], capsys)
    assert code == 1 and "notes.txt" in printed and "nothing was changed" in printed
    assert (mine / "notes.txt").read_text() == "keep me" and len(list(mine.iterdir())) == 1
