"""What a run records while it trains: `metrics.csv`, TensorBoard when installed, and the
collapse alarm.

`metrics.csv` has one row per logging step (means over the steps since the previous row) and
one per validation; its columns are fixed (`COLUMNS`), empty where a row has no value.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
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


class CollapseAlarm:
    """Warns once when the embedding collapses, with advice.

    Two signs, read from a logging row: the embeddings' variance (mean over dimensions of
    the per-dimension variance in the batch) below `1e-4 × norm²/D`, i.e. every input mapped
    to nearly the same point; or a margin loss stuck at the margin with the positive and
    negative distances equal (d_ap ≈ d_an: the network no longer separates classes).

    Args:
        margin: the loss's margin (None when the loss has none, e.g. the pair classifier).
        embedding_dim: D.
    """

    def __init__(self, margin: float | None, embedding_dim: int) -> None:
        self.margin, self.dim = margin, embedding_dim
        self.fired = False

    def check(self, row: dict[str, float]) -> str | None:
        """The warning text if `row` shows a collapse (only the first time), else None."""
        if self.fired:
            return None
        norm, variance = row.get("embedding_norm", math.nan), row.get("embedding_variance", 0.0)
        collapsed = variance < 1e-4 * max(norm * norm, 1e-12) / self.dim
        d_ap, d_an = row.get("mean_pos_dist", math.nan), row.get("mean_neg_dist", math.nan)
        stuck = (
            self.margin is not None
            and self.margin > 0
            and abs(row.get("loss", 0.0) - self.margin) < 0.02 * self.margin
            and abs(d_an - d_ap) < 0.01 * max(self.margin, d_an, 1e-6)
        )
        if not (collapsed or stuck):
            return None
        self.fired = True
        sign = (
            f"embedding variance {variance:.2e} (norm {norm:.3g})"
            if collapsed
            else f"loss {row['loss']:.4f} ≈ margin {self.margin} with d_ap {d_ap:.4f} ≈ d_an {d_an:.4f}"
        )
        message = (
            f"the embedding looks collapsed at step {int(row['step'])}: {sign}. Try a lower "
            "learning rate (optimizer.lr), start with semi-hard mining (loss.mining=semihard) "
            "rather than hard, and check the margin against the distance's range (unit-length "
            "embeddings are at most 2 apart in euclidean distance)."
        )
        warnings.warn(message, UserWarning, stacklevel=2)
        return message
