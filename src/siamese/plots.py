"""Every figure `siamese` draws (matplotlib, Agg backend). Each function writes one PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from siamese.evaluation.verification import RocCurve

TRAINED_COLOR = "#1f77b4"
BASELINE_COLOR = "#7f7f7f"
RIGHT_COLOR = "#2ca02c"
WRONG_COLOR = "#d62728"


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_embedding_2d(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    class_names: list[str],
    path: Path,
    title: str,
) -> Path:
    """Scatter of `embeddings` (N, D) projected on the two principal axes of the class
    centroids (which spreads the classes apart better than PCA of all points), coloured by
    class, with each class's name written at its centroid."""
    x = embeddings.double()
    classes = torch.unique(labels).tolist()
    centroids = torch.stack([x[labels == c].mean(dim=0) for c in classes])
    center = centroids.mean(dim=0)
    _, _, v = torch.linalg.svd(centroids - center, full_matrices=False)
    xy = ((x - center) @ v[:2].T).numpy()
    # tab20's strong shades first, then its light ones, so up to 10 classes are easy to tell apart.
    palette = plt.get_cmap("tab20").colors
    palette = palette[0::2] + palette[1::2]
    fig, ax = plt.subplots(figsize=(7, 6))
    for i, c in enumerate(classes):
        mask = (labels == c).numpy()
        color = palette[i % 20]
        ax.scatter(xy[mask, 0], xy[mask, 1], s=8, color=color, alpha=0.6, linewidths=0)
        cx, cy = xy[mask].mean(axis=0)
        ax.text(
            cx,
            cy,
            class_names[c],
            fontsize=13,
            ha="center",
            va="center",
            weight="bold",
            color=color,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": color, "alpha": 0.8},
        )
    ax.set_title(title)
    ax.set_xlabel("first principal axis of the class centres")
    ax.set_ylabel("second principal axis")
    return _save(fig, path)


def plot_training_curves(records: list[dict[str, float]], path: Path) -> Path:
    """Loss and active-triplet fraction against the training step."""
    steps = [r["step"] for r in records]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["loss"] for r in records], color=TRAINED_COLOR, label="loss")
    ax.set_xlabel("step")
    ax.set_ylabel("triplet loss", color=TRAINED_COLOR)
    ax.set_ylim(bottom=0)
    twin = ax.twinx()
    twin.plot(
        steps, [r["active_fraction"] for r in records], color="#ff7f0e", label="active fraction"
    )
    twin.set_ylabel("active triplets (loss > 0)", color="#ff7f0e")
    twin.set_ylim(0, 1)
    ax.set_title("Training")
    fig.legend(loc="upper right", bbox_to_anchor=(0.88, 0.88))
    return _save(fig, path)


def plot_roc(curves: dict[str, tuple[RocCurve, float, float]], path: Path, title: str) -> Path:
    """ROC curves (TAR against FAR), one per name → (curve, auc, eer), with each EER point."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    colors = [TRAINED_COLOR, BASELINE_COLOR, "#9467bd", "#8c564b"]
    for (name, (curve, auc, eer_value)), color in zip(curves.items(), colors, strict=False):
        ax.plot(
            curve.far.numpy(),
            curve.tar.numpy(),
            color=color,
            label=f"{name} (AUC {auc:.3f}, EER {eer_value:.1%})",
        )
        ax.plot([eer_value], [1 - eer_value], "o", color=color)
    ax.plot([0, 1], [1, 0], ":", color="black", linewidth=0.8, label="FAR = FRR (EER line)")
    ax.plot([0, 1], [0, 1], "--", color=BASELINE_COLOR, linewidth=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-accept rate (impostor pairs accepted)")
    ax.set_ylabel("true-accept rate (genuine pairs accepted)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_oneshot_episodes(
    images: torch.Tensor,
    support: torch.Tensor,
    query: torch.Tensor,
    predicted: torch.Tensor,
    path: Path,
    title: str,
) -> Path:
    """A few one-shot episodes, one row each: the query, then the support examples with the
    model's pick framed (green when right, red when wrong) and the true class marked.

    Args:
        images: (M, 1, H, W) uint8 images of the evaluation set.
        support: (R, N) support index of each way (1 shot), one row per episode.
        query: (R,) index of each row's query.
        predicted: (R,) the way the model chose.
    The true way of row r's query is the way whose support shares its class; callers put it
    first: way 0 is the true class.
    """
    rows, n_way = support.shape
    fig, axes = plt.subplots(
        rows, n_way + 1, figsize=(1.3 * (n_way + 1), 1.45 * rows), squeeze=False
    )
    for r in range(rows):
        _show(axes[r, 0], images[query[r]], "query" if r == 0 else "", "black", 2.5)
        for w in range(n_way):
            picked = int(predicted[r]) == w
            color = (RIGHT_COLOR if w == 0 else WRONG_COLOR) if picked else "#dddddd"
            label = "true class" if (w == 0 and r == 0) else ""
            _show(axes[r, w + 1], images[support[r, w]], label, color, 3.5 if picked else 1)
        axes[r, 0].set_ylabel(f"episode {r + 1}", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.text(
        0.5,
        0.0,
        "framed: the model's pick (green right, red wrong); the true class's example is first",
        ha="center",
        fontsize=8,
    )
    return _save(fig, path)


def _show(ax: plt.Axes, image: torch.Tensor, title: str, frame: str, width: float) -> None:
    ax.imshow(np.asarray(image[0]), cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color(frame)
        spine.set_linewidth(width)
    if title:
        ax.set_title(title, fontsize=8)
