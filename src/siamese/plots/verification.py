"""Verification figures: ROC curves with their equal-error-rate point, and the histograms of
genuine and impostor pair distances with the decision threshold.

Pair labels: 1 = same class (genuine), 0 = different class (impostor)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from siamese.errors import DataError
from siamese.evaluation.verification import RocCurve
from siamese.plots.style import (
    BASELINE_COLOR,
    GENUINE_COLOR,
    IMPOSTOR_COLOR,
    LINE_COLORS,
    new_figure,
    save_figure,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def plot_roc(curves: Mapping[str, tuple[RocCurve, float, float]], path: Path, title: str) -> Path:
    """ROC curves (TAR against FAR), one per name → (curve, auc, eer), each with its EER point
    (where FAR = FRR, on the dotted anti-diagonal) marked and labelled.

    Args:
        curves: name → (RocCurve with (T,) far/tar, AUC, EER as a fraction).
    Figure: 6 × 5.5 inches (600 × 550 pixels).
    """
    fig = new_figure(6, 5.5)
    ax = fig.add_subplot()
    ax.plot([0, 1], [1, 0], ":", color="black", linewidth=0.8, label="FAR = FRR (EER line)")
    ax.plot([0, 1], [0, 1], "--", color=BASELINE_COLOR, linewidth=0.8, label="chance")
    for (name, (curve, auc, eer_value)), color in zip(curves.items(), LINE_COLORS, strict=False):
        ax.plot(
            curve.far.numpy(),
            curve.tar.numpy(),
            color=color,
            linewidth=1.8,
            label=f"{name} (AUC {auc:.3f}, EER {eer_value:.1%})",
        )
        ax.plot([eer_value], [1 - eer_value], "o", color=color, markersize=7, markeredgecolor="k")
        ax.annotate(
            f"EER {eer_value:.1%}",
            (eer_value, 1 - eer_value),
            xytext=(8, -4),
            textcoords="offset points",
            fontsize=8,
            color=color,
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-accept rate (impostor pairs accepted)")
    ax.set_ylabel("true-accept rate (genuine pairs accepted)")
    return _titled_and_saved(fig, ax, title, "lower right", path)


def plot_distance_histograms(
    distances: torch.Tensor,
    same: torch.Tensor,
    path: Path,
    title: str = "Pair distances",
    *,
    threshold: float | None = None,
    bins: int = 40,
) -> Path:
    """Histograms of the genuine and impostor pairs' distances (each normalised to its own
    count, so unbalanced sets compare), with the decision threshold as a vertical line and the
    accuracy it gives.

    Args:
        distances: (P,) pair distances, lower = more similar.
        same: (P,) pair labels, 1 = same class (genuine), 0 = different (impostor).
        threshold: pairs with distance <= threshold are accepted as genuine; None: the most
            accurate threshold on these pairs (`best_threshold`) when both kinds are present.
    Figure: 7 × 4.5 inches (700 × 450 pixels).
    """
    d = distances.detach().cpu().double().flatten().numpy()
    s = same.detach().cpu().flatten().bool().numpy()
    if d.shape != s.shape:
        raise DataError(f"{d.size} distances but {s.size} pair labels")
    if d.size == 0 or not np.isfinite(d).all():
        raise DataError("the pair distances are empty or contain NaN / inf")
    both = bool(s.any() and (~s).any())
    if threshold is None and both:
        from siamese.evaluation.verification import best_threshold

        threshold, _ = best_threshold(torch.as_tensor(d), torch.as_tensor(s))
    lo, hi = float(d.min()), float(d.max())
    if threshold is not None:
        lo, hi = min(lo, threshold), max(hi, threshold)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    fig = new_figure(7, 4.5)
    ax = fig.add_subplot()
    for mask, name, color in (
        (s, "genuine (same class)", GENUINE_COLOR),
        (~s, "impostor (different)", IMPOSTOR_COLOR),
    ):
        if mask.any():
            ax.hist(
                d[mask],
                bins=edges,
                weights=np.full(int(mask.sum()), 1.0 / mask.sum()),
                color=color,
                alpha=0.55,
                edgecolor=color,
                label=f"{name}: {int(mask.sum())} pairs",
            )
    if threshold is not None:
        label = f"threshold {threshold:.3g}"
        if both:
            accuracy = float(((d <= threshold) == s).mean())
            label += f" (accuracy {accuracy:.1%})"
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1.5, label=label)
    ax.set_xlabel("distance between the two embeddings (accept as same when ≤ threshold)")
    ax.set_ylabel("share of pairs of that kind")
    return _titled_and_saved(fig, ax, title, "upper right", path)


def _titled_and_saved(fig: Figure, ax: Axes, title: str, legend_loc: str, path: Path) -> Path:
    """Finish a one-panel figure as the verification plots do (title, light grid, a small
    legend at `legend_loc`) and save it to `path` (returned)."""
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc=legend_loc, fontsize=8)
    return save_figure(fig, path)
