"""metrics.csv, TensorBoard events, and dropping rows written after a resumed checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from siamese.run_directory import metrics as telemetry
from siamese.run_directory.metrics import MetricsLog, read_metrics


class RecordingWriter:
    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []
        self.closed = False

    def add_scalar(self, name: str, value: float, step: int) -> None:
        self.scalars.append((name, value, step))

    def close(self) -> None:
        self.closed = True


def test_rows_reach_csv_and_tensorboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = RecordingWriter()
    monkeypatch.setattr(telemetry, "_tensorboard_writer", lambda directory: writer)
    log = MetricsLog(tmp_path)
    log.write({"step": 10, "epoch": 1, "kind": "train", "loss": 0.5, "lr": 1e-3})
    log.write({"step": 20, "epoch": 1, "kind": "validation", "val_roc_auc": 0.9})
    log.close()
    rows = read_metrics(tmp_path / "metrics.csv")
    assert rows == [
        {"step": 10.0, "epoch": 1.0, "kind": "train", "loss": 0.5, "lr": 0.001},
        {"step": 20.0, "epoch": 1.0, "kind": "validation", "val_roc_auc": 0.9},
    ]
    assert ("train/loss", 0.5, 10) in writer.scalars
    assert ("validation/val_roc_auc", 0.9, 20) in writer.scalars and writer.closed


def test_resume_drops_rows_after_the_checkpoint(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path, tensorboard=False)
    for step in (5, 10, 15, 20):
        log.write({"step": step, "epoch": 1, "kind": "train", "loss": 1.0 / step})
    log.close()
    log = MetricsLog(tmp_path, resume_step=10, tensorboard=False)
    log.write({"step": 15, "epoch": 1, "kind": "train", "loss": 0.5})
    log.close()
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [(r["step"], r["loss"]) for r in rows] == [(5.0, 0.2), (10.0, 0.1), (15.0, 0.5)]
