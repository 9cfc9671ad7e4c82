"""The margin sweep: one 2-D embedding panel per margin (as the MNIST triplet tutorial's grid of
margins 0…0.9), each titled with the metrics that margin reached."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from siamese.errors import DataError
from siamese.plots.embedding import _scatter_classes, project_2d
from siamese.plots.style import new_figure, save_figure


@dataclass
class SweepPanel:
    """One run's result in a sweep.

    Attributes:
        value: the swept key's value the run trained with (a number, a word, a list).
        embeddings: (N, D) embeddings of the plotted examples.
        labels: (N,) their class indices.
        metrics: name → value written in the title, e.g. {"accuracy": 0.88, "MAP@R": 0.71};
            values in 0…1 whose name suggests a rate are shown as percentages.
    """

    value: Any
    embeddings: torch.Tensor
    labels: torch.Tensor
    metrics: Mapping[str, float] = field(default_factory=dict)
    key: str = "margin"
    """The swept key, as the panel's title names it."""

    def title(self) -> str:
        """e.g. "margin 0.2", "loss.mining semihard"."""
        shown = f"{self.value:g}" if isinstance(self.value, float) else str(self.value)
        return f"{self.key} {shown}"


_PERCENT_NAMES = ("accuracy", "acc", "precision", "recall", "eer", "p@1")


def _format_metric(name: str, value: float) -> str:
    if not math.isfinite(value):
        return f"{name} –"
    if name.lower().startswith(_PERCENT_NAMES) and 0 <= value <= 1:
        return f"{name} {value:.1%}"
    return f"{name} {value:.3f}"


def plot_margin_sweep(
    panels: Sequence[SweepPanel],
    path: Path,
    title: str = "Triplet margin sweep",
    *,
    class_names: Sequence[str] | None = None,
    columns: int = 5,
) -> Path:
    """A grid of embedding scatters, one per margin, each projected on its own principal
    components (every margin trains a different model, so there is no common basis) and
    coloured by class with the same class colours in every panel.

    Args:
        panels: one `SweepPanel` per margin, in the order to show.
        class_names: names of the class indices, for the legend.
        columns: panels per row.
    Figure: (3 × columns) × (3 × rows + 0.9) inches, columns = min(columns, panels),
        rows = ceil(panels / columns).
    """
    if not panels:
        raise DataError("there are no margin-sweep results to plot")
    cols = max(1, min(columns, len(panels)))
    rows = math.ceil(len(panels) / cols)
    fig = new_figure(3 * cols, 3 * rows + 0.9)
    axes = fig.subplots(rows, cols, squeeze=False)
    handles: dict[str, object] = {}
    for k, panel in enumerate(panels):
        ax = axes[k // cols, k % cols]
        y = panel.labels.detach().cpu().numpy().astype(np.int64)
        if y.shape != (panel.embeddings.shape[0],):
            raise DataError(f"{panel.title()}: labels do not match the embeddings")
        xy = project_2d(panel.embeddings, "pca")
        _scatter_classes(ax, xy, y, class_names, point_size=8, name_at_centroid=False)
        metrics = ", ".join(_format_metric(n, float(v)) for n, v in panel.metrics.items())
        ax.set_title(panel.title() + (f"\n{metrics}" if metrics else ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        for h, name in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(name, h)
    for k in range(len(panels), rows * cols):
        axes[k // cols, k % cols].set_visible(False)
    if len(handles) <= 20:
        fig.legend(
            list(handles.values()),
            list(handles.keys()),
            loc="outside lower center",
            ncol=min(len(handles), 10),
            fontsize=8,
            markerscale=2,
        )
    fig.suptitle(f"{title} (each panel: its own PCA, axes without units)", fontsize=11)
    return save_figure(fig, path)
