"""A run's metrics: `metrics.csv` in the run directory (and TensorBoard events beside it when
the package is installed), written by training as it goes and read by evaluation's reports.

`metrics.csv` has one row per logging step (means over the steps since the previous row) and
one per validation; its columns are fixed (`COLUMNS`), empty where a row has no value.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from siamese.atomic_files import write_bytes_atomic

TRAINING_COLUMNS: tuple[str, ...] = (
    "loss",
    "active_fraction",
    "mean_pos_dist",
    "mean_neg_dist",
    "embedding_norm",
    "embedding_variance",
    "lr",
    "images_per_s",
)
VALIDATION_COLUMNS: tuple[str, ...] = (
    "val_precision_at_1",
    "val_roc_auc",
    "val_eer",
    "val_queries",
)
COLUMNS: tuple[str, ...] = ("step", "epoch", "kind", *TRAINING_COLUMNS, *VALIDATION_COLUMNS)


class MetricsLog:
    """Appends rows to `metrics.csv` (flushed per row, so a killed run keeps its rows) and,
    when the `tensorboard` package is installed, to TensorBoard event files in `tensorboard/`.

    Args:
        run_dir: the run directory.
        resume_step: when resuming, rows after this step (written after the checkpoint that
            is resumed) are dropped first, so no step appears twice.
        tensorboard: also write TensorBoard events if the package is importable.
    """

    def __init__(self, run_dir: Path, resume_step: int | None = None, tensorboard: bool = True):
        self.path = run_dir / "metrics.csv"
        if resume_step is not None and self.path.exists():
            _keep_rows_up_to(self.path, resume_step)
        new = not self.path.exists()
        self._file = self.path.open("a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS, extrasaction="ignore")
        if new:
            self._writer.writeheader()
            self._file.flush()
        self._tensorboard = _tensorboard_writer(run_dir / "tensorboard") if tensorboard else None

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (`step`, `epoch`, `kind` = train or validation, and metrics)."""
        self._writer.writerow({k: _format(v) for k, v in row.items()})
        self._file.flush()
        if self._tensorboard is not None:
            for name, value in row.items():
                if name not in ("step", "epoch", "kind") and isinstance(value, int | float):
                    self._tensorboard.add_scalar(f"{row['kind']}/{name}", value, int(row["step"]))

    def close(self) -> None:
        self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


def read_metrics(path: Path) -> list[dict[str, float | str]]:
    """The rows of a `metrics.csv`, numbers as floats, empty cells left out."""
    with path.open(newline="", encoding="utf-8") as f:
        return [
            {k: (v if k == "kind" else float(v)) for k, v in row.items() if v != ""}
            for row in csv.DictReader(f)
        ]


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _keep_rows_up_to(path: Path, step: int) -> None:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(r for r in rows if r.get("step") and float(r["step"]) <= step)
    write_bytes_atomic(path, out.getvalue().encode())


def _tensorboard_writer(directory: Path) -> Any:
    if os.environ.get("SIAMESE_NO_TENSORBOARD"):
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(directory))
