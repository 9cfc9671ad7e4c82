"""Training curves from the records of a run (`TrainingHistory.records`) or the rows of its
`metrics.csv` (`siamese.run_directory.metrics.read_metrics`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from siamese.errors import DataError
from siamese.plots.style import (
    GENUINE_COLOR,
    IMPOSTOR_COLOR,
    SECOND_COLOR,
    TRAINED_COLOR,
    new_figure,
    save_figure,
)

_VALIDATION = {
    "val_precision_at_1": "precision@1",
    "val_roc_auc": "ROC AUC",
    "val_eer": "EER",
}


def _series(rows: Sequence[Mapping[str, float | str]], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of the rows that have a finite number under `name`."""
    pairs = [
        (float(r["step"]), float(r[name]))
        for r in rows
        if isinstance(r.get(name), int | float) and np.isfinite(float(r[name]))
    ]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    a = np.asarray(pairs)
    return a[:, 0], a[:, 1]


def training_curve_panels(records: Sequence[Mapping[str, float | str]]) -> int:
    """How many panels `plot_training_curves` draws for these records (1 to 3)."""
    has_dist = any(_series(records, n)[0].size for n in ("mean_pos_dist", "mean_neg_dist"))
    has_val = any(_series(records, n)[0].size for n in _VALIDATION)
    return 1 + int(has_dist) + int(has_val)


def plot_training_curves(
    records: Sequence[Mapping[str, float | str]],
    path: Path,
    title: str = "Training",
) -> Path:
    """Training curves against the step, one panel per family of numbers:

    1. the loss, and the fraction of active pairs/triplets (loss > 0) on a second axis;
    2. the mean anchor–positive and anchor–negative distances (when recorded);
    3. validation metrics: precision@1, ROC AUC and EER (when the rows have any).

    Args:
        records: one mapping per row, with `step` and any of `loss`, `active_fraction`,
            `mean_pos_dist`, `mean_neg_dist`, `val_precision_at_1`, `val_roc_auc`, `val_eer`
            (missing, empty or NaN values are skipped; a `kind` column is ignored).
    Figure: 8 × (0.4 + 2.6 × panels) inches, panels = `training_curve_panels(records)`.
    """
    if not records or not any("step" in r for r in records):
        raise DataError("there are no training records (with a `step`) to plot")
    rows = [r for r in records if "step" in r]
    panels = training_curve_panels(rows)
    fig = new_figure(8, 0.4 + 2.6 * panels)
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    marker = "o" if len(rows) <= 20 else None

    ax = axes[0]
    steps, loss = _series(rows, "loss")
    lines = ax.plot(steps, loss, color=TRAINED_COLOR, marker=marker, ms=3, label="loss")
    ax.set_ylabel("loss", color=TRAINED_COLOR)
    if loss.size:
        ax.set_ylim(bottom=min(0.0, float(loss.min())), top=max(float(loss.max()) * 1.05, 1e-6))
    steps, active = _series(rows, "active_fraction")
    if active.size:
        twin = ax.twinx()
        lines += twin.plot(
            steps, active, color=SECOND_COLOR, marker=marker, ms=3, label="active fraction"
        )
        twin.set_ylabel("active (loss > 0)", color=SECOND_COLOR)
        twin.set_ylim(0, 1.02)
    ax.legend(lines, [line.get_label() for line in lines], loc="upper right", fontsize=8)
    ax.set_title("loss and active pairs / triplets", fontsize=10)
    ax.grid(alpha=0.3)

    k = 1
    if any(_series(rows, n)[0].size for n in ("mean_pos_dist", "mean_neg_dist")):
        ax = axes[k]
        for name, label, color in (
            ("mean_pos_dist", "anchor–positive d(a, p)", GENUINE_COLOR),
            ("mean_neg_dist", "anchor–negative d(a, n)", IMPOSTOR_COLOR),
        ):
            steps, values = _series(rows, name)
            if values.size:
                ax.plot(steps, values, color=color, marker=marker, ms=3, label=label)
        ax.set_ylabel("mean distance")
        ax.set_ylim(bottom=0)
        ax.legend(loc="best", fontsize=8)
        ax.set_title("distances in the batch (the gap should grow)", fontsize=10)
        ax.grid(alpha=0.3)
        k += 1
    if k < panels:
        ax = axes[k]
        for (name, label), color in zip(
            _VALIDATION.items(), ("#2ca02c", "#9467bd", "#d62728"), strict=True
        ):
            steps, values = _series(rows, name)
            if values.size:
                ax.plot(steps, values, color=color, marker="o", ms=4, label=label)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("validation")
        ax.legend(loc="best", fontsize=8)
        ax.set_title("validation on held-out examples", fontsize=10)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("training step")
    fig.suptitle(title, fontsize=12)
    return save_figure(fig, path)
