"""The quick start end to end: a short demo run into a temporary directory."""

import json

import pytest

from siamese.cli import main


@pytest.mark.slow
def test_demo_writes_report_metrics_and_figures(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(out), "--epochs", "1", "--quiet"])
    assert exit_info.value.code in (0, None)
    assert f"report: {out / 'report.md'}" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "unseen_verification_auc",
        "unseen_eer",
        "oneshot_5way",
        "oneshot_20way",
        "raw_pixels_verification_auc",
        "train_seconds",
    ):
        assert key in metrics
    assert metrics["unseen_verification_auc"] >= 0.9
    # What training adds: the embedding beats raw pixels by a wide margin.
    assert metrics["unseen_verification_auc"] > metrics["raw_pixels_verification_auc"] + 0.15
    assert metrics["oneshot_5way"] > metrics["raw_pixels_oneshot_5way"] + 0.2
    for name in ("embedding", "loss", "roc", "oneshot"):
        png = out / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "figures/roc.png" in report and f"{metrics['unseen_verification_auc']:.3f}" in report
    assert (out / "model.safetensors").is_file() and (out / "model.json").is_file()
    split = json.loads((out / "split.json").read_text())
    assert split["method"] == "class" and set(split["parts"]) == {"train", "validation", "held_out"}
    held_out = set(split["parts"]["held_out"]["class_names"])
    assert len(held_out) == 40 and not held_out & set(split["parts"]["train"]["class_names"])
