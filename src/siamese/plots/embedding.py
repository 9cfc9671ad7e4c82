"""Embeddings in two dimensions: the scatter coloured by class (PCA, t-SNE, UMAP), with
optional image thumbnails, and the embedding's evolution over epochs as a grid of PCA panels."""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.offsetbox import AnnotationBbox, OffsetImage

from siamese.errors import ConfigError, DataError
from siamese.plots.style import class_colors, class_name, image_array, new_figure, save_figure

Projection = Literal["class_pca", "pca", "tsne", "umap"]
PROJECTIONS: tuple[str, ...] = ("class_pca", "pca", "tsne", "umap")
_AXIS_LABELS = {
    "class_pca": ("first principal axis of the class centres", "second principal axis"),
    "pca": ("principal component 1", "principal component 2"),
    "tsne": ("t-SNE 1", "t-SNE 2"),
    "umap": ("UMAP 1", "UMAP 2"),
}


def _as_float64(embeddings: torch.Tensor) -> np.ndarray:
    x = embeddings.detach().cpu().double()
    if x.ndim != 2:
        raise DataError(f"embeddings must be (N, D), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise DataError("there are no embeddings to plot")
    if not torch.isfinite(x).all():
        raise DataError(
            "embeddings contain NaN or inf; plot a model that trained without diverging"
        )
    return x.numpy()


def pca_basis(embeddings: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean (D,) and the two leading principal axes (2, D) of `embeddings` (N, D).

    Missing axes (N < 3, D < 2 or zero variance) are zero rows, so a projection on them is 0
    rather than NaN. Each axis's sign is fixed (its largest loading is positive), so the
    picture does not flip between runs or snapshots that barely differ.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    basis = np.zeros((2, x.shape[1]))
    tol = max(s[0], 1.0) * 1e-12 if s.size else 0.0
    for i in range(min(2, vt.shape[0])):
        if s[i] > tol:
            axis = vt[i]
            basis[i] = axis if axis[np.argmax(np.abs(axis))] >= 0 else -axis
    return mean, basis


def project_2d(
    embeddings: torch.Tensor,
    method: Projection = "pca",
    labels: torch.Tensor | None = None,
    *,
    seed: int = 0,
    perplexity: float | None = None,
) -> np.ndarray:
    """Two-dimensional coordinates (N, 2) float64 of `embeddings` (N, D).

    Args:
        method: `pca` (principal components of all points), `class_pca` (principal axes of
            the class centroids, which separates classes better; needs `labels` (N,), and falls
            back to `pca` with fewer than 3 classes), `tsne` (needs scikit-learn) or `umap`
            (needs umap-learn). t-SNE and UMAP fall back to PCA below 4 points.
        perplexity: t-SNE's perplexity; default min(30, (N − 1) / 3), at least 1.
    Raises:
        ConfigError: unknown method, or the package it needs is not installed.
    """
    if method not in PROJECTIONS:
        raise ConfigError(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")
    x = _as_float64(embeddings)
    n = x.shape[0]
    if method == "class_pca":
        if labels is None:
            raise ConfigError("the class_pca projection needs the labels")
        y = labels.detach().cpu().numpy()
        classes = np.unique(y)
        if classes.size >= 3:
            centroids = np.stack([x[y == c].mean(axis=0) for c in classes])
            mean, basis = pca_basis(centroids)
            if np.any(basis[1]):
                return (x - mean) @ basis.T
        method = "pca"
    spread = n >= 4 and float(np.ptp(x, axis=0).max()) > 0
    if method == "tsne":
        manifold = _import("sklearn.manifold", "t-SNE", "scikit-learn")
        if spread:
            p = perplexity if perplexity is not None else min(30.0, max(1.0, (n - 1) / 3))
            tsne = manifold.TSNE(
                n_components=2,
                perplexity=min(p, n - 1.0),
                init="pca" if x.shape[1] >= 2 else "random",
                # Exact gradients are faster than Barnes-Hut below a few hundred points.
                method="exact" if n <= 300 else "barnes_hut",
                random_state=seed,
            )
            return np.nan_to_num(np.asarray(tsne.fit_transform(x), dtype=np.float64))
    elif method == "umap":
        umap = _import("umap", "UMAP", "umap-learn")
        if spread:
            reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed)
            return np.nan_to_num(np.asarray(reducer.fit_transform(x), dtype=np.float64))
    # PCA, and the fallback for too few or identical points (t-SNE / UMAP need a spread).
    mean, basis = pca_basis(x)
    return (x - mean) @ basis.T


def _import(module: str, what: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ConfigError(
            f"a {what} projection needs the package {package!r}, which is not installed; "
            f"`pip install {package}` or use method='pca'"
        ) from error


def _scatter_classes(
    ax: Axes,
    xy: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | None,
    *,
    point_size: float,
    name_at_centroid: bool,
) -> None:
    colors = class_colors(labels.tolist())
    for c, color in colors.items():
        mask = labels == c
        ax.scatter(
            xy[mask, 0],
            xy[mask, 1],
            s=point_size,
            color=color,
            alpha=0.7,
            linewidths=0,
            label=class_name(class_names, c),
        )
        if name_at_centroid:
            cx, cy = xy[mask].mean(axis=0)
            ax.text(
                cx,
                cy,
                class_name(class_names, c),
                fontsize=11,
                ha="center",
                va="center",
                weight="bold",
                color=color,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": color, "alpha": 0.8},
            )
    _pad_limits(ax, xy)


def _pad_limits(ax: Axes, xy: np.ndarray) -> None:
    """Axis limits 5 % beyond the points, and a unit range around points that coincide."""
    for dim, setter in ((0, ax.set_xlim), (1, ax.set_ylim)):
        lo, hi = float(xy[:, dim].min()), float(xy[:, dim].max())
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        setter(lo - pad, hi + pad)


def _thumbnail_indices(xy: np.ndarray, count: int, min_distance: float) -> list[int]:
    """Up to `count` points, greedily chosen so that no two are closer than `min_distance`."""
    chosen: list[int] = []
    for i in np.random.default_rng(0).permutation(xy.shape[0]):
        if len(chosen) >= count:
            break
        if not chosen or np.min(np.linalg.norm(xy[chosen] - xy[i], axis=1)) >= min_distance:
            chosen.append(int(i))
    return chosen


def plot_embedding_2d(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str] | None,
    path: Path,
    title: str,
    *,
    method: Projection = "class_pca",
    images: torch.Tensor | None = None,
    thumbnails: int = 40,
    seed: int = 0,
    perplexity: float | None = None,
) -> Path:
    """Scatter of `embeddings` (N, D) in two dimensions, coloured by class (fixed class
    colours, see `class_colors`), each class's name written at its centroid (up to 20
    classes; a legend beside the plot lists them too when there are at most 12).

    Args:
        labels: (N,) int64 class indices; `class_names[label]` names a class (None: the index).
        method: the projection, see `project_2d` (default: principal axes of class centres).
        images: optional (N, C, H, W) uint8 images of the points (C = 1 or 3); then up to
            `thumbnails` of them, spread over the plot, are drawn at their points, framed in
            their class colour.
        seed, perplexity: for t-SNE / UMAP.
    Figure: 7.5 × 6 inches (750 × 600 pixels).
    Raises:
        ConfigError: t-SNE or UMAP asked for but not installed.
    """
    y = labels.detach().cpu().numpy().astype(np.int64)
    if y.shape != (embeddings.shape[0],):
        raise DataError(f"{embeddings.shape[0]} embeddings but labels of shape {tuple(y.shape)}")
    xy = project_2d(embeddings, method, labels, seed=seed, perplexity=perplexity)
    n_classes = np.unique(y).size
    fig = new_figure(7.5, 6)
    ax = fig.add_subplot()
    _scatter_classes(
        ax,
        xy,
        y,
        class_names,
        point_size=10 if y.size > 200 else 25,
        name_at_centroid=n_classes <= 20,
    )
    if images is not None and thumbnails > 0:
        if images.shape[0] != y.size:
            raise DataError(f"{y.size} embeddings but {images.shape[0]} images")
        span = float(np.ptp(xy, axis=0).max()) or 1.0
        colors = class_colors(y.tolist())
        side = max(images.shape[-1], images.shape[-2])
        for i in _thumbnail_indices(xy, thumbnails, 0.08 * span):
            a = image_array(images[i])
            box = OffsetImage(a, zoom=28 / side, cmap="gray" if a.ndim == 2 else None)
            ax.add_artist(
                AnnotationBbox(
                    box,
                    (xy[i, 0], xy[i, 1]),
                    frameon=True,
                    pad=0.1,
                    bboxprops={"edgecolor": colors[int(y[i])], "linewidth": 1.5},
                )
            )
    if n_classes <= 12:
        ax.legend(
            title="class", loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, markerscale=2
        )
    ax.set_title(title)
    ax.set_xlabel(_AXIS_LABELS[method][0])
    ax.set_ylabel(_AXIS_LABELS[method][1])
    return save_figure(fig, path)


def plot_embedding_evolution(
    snapshots: Sequence[tuple[int, torch.Tensor]],
    labels: torch.Tensor,
    path: Path,
    title: str = "The embedding during training",
    *,
    class_names: Sequence[str] | None = None,
    align: Literal["last", "each"] = "last",
    columns: int = 4,
) -> Path:
    """The embedding of the same examples at several epochs, one PCA panel per snapshot (as
    the Keras MNIST tutorial's live plot), coloured by class.

    Args:
        snapshots: (epoch, embeddings (N, D)) pairs, in order; every snapshot embeds the same
            N examples.
        labels: (N,) class index of each example.
        align: `last` projects every snapshot on the principal axes of the last one, with the
            same axis limits in every panel, so the panels show the points moving in one fixed
            frame; `each` gives every panel its own PCA and limits (the clusters' shape is
            clearer early on, but the axes mean something else in each panel).
        columns: panels per row.
    Figure: (3 × columns) × (3 × rows + 0.5) inches, rows = ceil(snapshots / columns),
        columns = min(columns, snapshots).
    """
    if not snapshots:
        raise DataError("there are no embedding snapshots to plot")
    if align not in ("last", "each"):
        raise ConfigError(f"align must be 'last' or 'each', got {align!r}")
    y = labels.detach().cpu().numpy().astype(np.int64)
    arrays = [_as_float64(z) for _, z in snapshots]
    for z in arrays:
        if z.shape[0] != y.size:
            raise DataError(f"a snapshot has {z.shape[0]} embeddings but there are {y.size} labels")
    if align == "last":
        mean, basis = pca_basis(arrays[-1])
        points = [(z - mean) @ basis.T if z.shape[1] == mean.size else None for z in arrays]
        if any(p is None for p in points):
            raise DataError("align='last' needs every snapshot to have the same dimension")
    else:
        points = []
        for z in arrays:
            mean, basis = pca_basis(z)
            points.append((z - mean) @ basis.T)
    cols = max(1, min(columns, len(snapshots)))
    rows = math.ceil(len(snapshots) / cols)
    fig = new_figure(3 * cols, 3 * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False)
    everything = np.concatenate(points)
    for k, ((epoch, _), xy) in enumerate(zip(snapshots, points, strict=True)):
        ax = axes[k // cols, k % cols]
        _scatter_classes(ax, xy, y, class_names, point_size=8, name_at_centroid=False)
        if align == "last":
            _pad_limits(ax, everything)
        ax.set_title(f"epoch {epoch}", fontsize=10)
        ax.tick_params(labelsize=7)
        if k % cols == 0:
            ax.set_ylabel("PC 2", fontsize=8)
        if k // cols == rows - 1:
            ax.set_xlabel("PC 1", fontsize=8)
    for k in range(len(snapshots), rows * cols):
        axes[k // cols, k % cols].set_visible(False)
    handles, names = axes[0, 0].get_legend_handles_labels()
    if len(names) <= 12:
        fig.legend(
            handles,
            names,
            loc="outside lower center",
            ncol=min(len(names), 12),
            fontsize=8,
            markerscale=2,
        )
    frame = "the last epoch's principal axes" if align == "last" else "each epoch's own PCA"
    fig.suptitle(f"{title}  ({frame})", fontsize=11)
    return save_figure(fig, path)
