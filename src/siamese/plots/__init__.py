"""Every figure `siamese` draws (matplotlib, Agg canvas, never pyplot). Each function writes one
PNG at a fixed DPI (so its pixel size is its documented figure size × `DPI`) and returns its
path.

One module per figure family: `embedding` (2-D scatter, evolution over epochs), `curves`
(training curves), `verification` (ROC, distance histograms), `grids` (triplets, pairs,
retrieval, one-shot episodes), `sweep` (margin sweep); `style` holds the shared palette,
figure creation and saving, and image display. Functions take tensors and paths, never runs
or configs; may import `evaluation` (ROC curves, projections) and `errors` only.
"""

from __future__ import annotations

from siamese.plots.curves import plot_training_curves
from siamese.plots.embedding import plot_embedding_2d, plot_embedding_evolution, project_2d
from siamese.plots.grids import (
    plot_oneshot_episodes,
    plot_pair_grid,
    plot_retrieval_grid,
    plot_triplet_grid,
)
from siamese.plots.style import DPI, class_colors
from siamese.plots.sweep import SweepPanel, plot_margin_sweep
from siamese.plots.verification import plot_distance_histograms, plot_roc

__all__ = [
    "DPI",
    "SweepPanel",
    "class_colors",
    "plot_distance_histograms",
    "plot_embedding_2d",
    "plot_embedding_evolution",
    "plot_margin_sweep",
    "plot_oneshot_episodes",
    "plot_pair_grid",
    "plot_retrieval_grid",
    "plot_roc",
    "plot_training_curves",
    "plot_triplet_grid",
    "project_2d",
]
