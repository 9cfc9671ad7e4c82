"""Image grids: triplets (anchor / positive / negative), pairs, retrieval results (query and
its top-k, right and wrong marked) and one-shot episodes.

Every function takes the images once, (M, C, H, W) uint8 with C = 1 (grey) or 3 (RGB), and
index tensors into them, so a grid shows any selection without copying images around."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from siamese.errors import DataError
from siamese.plots.style import (
    GENUINE_COLOR,
    IMPOSTOR_COLOR,
    NEUTRAL_FRAME,
    RIGHT_COLOR,
    WRONG_COLOR,
    check_images,
    new_figure,
    save_figure,
    show_image,
)

CELL = 1.4
"""Inches per image cell in every grid."""


def plot_triplet_grid(
    images: torch.Tensor,
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    path: Path,
    title: str = "Triplets: anchor, positive (same class), negative (other class)",
    *,
    ap_distances: torch.Tensor | None = None,
    an_distances: torch.Tensor | None = None,
    margin: float | None = None,
) -> Path:
    """One triplet per row: anchor, positive (framed blue) and negative (framed orange).

    Args:
        images: (M, C, H, W) uint8.
        anchors, positives, negatives: (R,) indices into `images`.
        ap_distances, an_distances: optional (R,) d(a, p) and d(a, n), written above the
            positive and negative; with `margin`, a row whose triplet is active
            (d(a, p) − d(a, n) + margin > 0) is labelled so in red.
    Figure: (3 × CELL + 0.4) × (CELL × R + 0.6) inches.
    """
    check_images(images, anchors, positives, negatives)
    rows = anchors.numel()
    if rows == 0 or positives.numel() != rows or negatives.numel() != rows:
        raise DataError("anchors, positives and negatives must be non-empty and of equal length")
    fig = new_figure(3 * CELL + 0.4, CELL * rows + 0.6)
    axes = fig.subplots(rows, 3, squeeze=False)
    for r in range(rows):
        ap = an = ""
        if ap_distances is not None and an_distances is not None:
            ap, an = f"d={float(ap_distances[r]):.2f}", f"d={float(an_distances[r]):.2f}"
        heads = ("anchor", "positive", "negative") if r == 0 else ("", "", "")
        show_image(axes[r, 0], images[anchors[r]], heads[0], "black", 1.5)
        show_image(
            axes[r, 1],
            images[positives[r]],
            " ".join(filter(None, (heads[1], ap))),
            GENUINE_COLOR,
            3,
        )
        show_image(
            axes[r, 2],
            images[negatives[r]],
            " ".join(filter(None, (heads[2], an))),
            IMPOSTOR_COLOR,
            3,
        )
        label = f"triplet {r + 1}"
        color = "black"
        if margin is not None and ap and an:
            active = float(ap_distances[r]) - float(an_distances[r]) + margin > 0  # type: ignore[index]
            label += "\nactive" if active else "\nsatisfied"
            color = WRONG_COLOR if active else RIGHT_COLOR
        axes[r, 0].set_ylabel(label, fontsize=8, color=color)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_pair_grid(
    images: torch.Tensor,
    first: torch.Tensor,
    second: torch.Tensor,
    same: torch.Tensor,
    path: Path,
    title: str = "Pairs",
    *,
    distances: torch.Tensor | None = None,
    predicted_same: torch.Tensor | None = None,
    pairs_per_row: int = 4,
) -> Path:
    """Pairs side by side, `pairs_per_row` pairs per row, each titled genuine or impostor.

    Args:
        images: (M, C, H, W) uint8.
        first, second: (P,) indices into `images` of each pair's two images.
        same: (P,) pair labels, 1 = same class (genuine), 0 = different class (impostor).
        distances: optional (P,) distances, written in each pair's title.
        predicted_same: optional (P,) the model's decision (1 = same); then each pair is
            framed green when it is right and red when wrong; else genuine pairs are framed
            blue and impostors orange.
    Figure: (2 × CELL × columns + 0.3 × (columns − 1)) × (CELL × rows + 0.7) inches,
        columns = min(pairs_per_row, P), rows = ceil(P / columns).
    """
    check_images(images, first, second)
    n = first.numel()
    if n == 0 or second.numel() != n or same.numel() != n:
        raise DataError("first, second and same must be non-empty and of equal length")
    cols = max(1, min(pairs_per_row, n))
    rows = math.ceil(n / cols)
    fig = new_figure(2 * CELL * cols + 0.3 * (cols - 1), CELL * rows + 0.7)
    # A narrow spacer column between pairs keeps each pair visibly together.
    ratios = [1.0, 1.0] + [0.21, 1.0, 1.0] * (cols - 1)
    axes = fig.subplots(rows, len(ratios), squeeze=False, gridspec_kw={"width_ratios": ratios})
    for ax in axes.flat:
        ax.set_visible(False)
    for k in range(n):
        r, c = divmod(k, cols)
        left, right = axes[r, 3 * c], axes[r, 3 * c + 1]
        left.set_visible(True)
        right.set_visible(True)
        genuine = bool(same[k])
        if predicted_same is not None:
            frame = RIGHT_COLOR if bool(predicted_same[k]) == genuine else WRONG_COLOR
        else:
            frame = GENUINE_COLOR if genuine else IMPOSTOR_COLOR
        text = "same" if genuine else "different"
        if distances is not None:
            text += f", d={float(distances[k]):.2f}"
        show_image(left, images[first[k]], "", frame, 3)
        show_image(right, images[second[k]], "", frame, 3)
        left.set_title(
            text, fontsize=8, loc="left", color=GENUINE_COLOR if genuine else IMPOSTOR_COLOR
        )
    legend = (
        "frame: green = model right, red = model wrong"
        if predicted_same is not None
        else "frame: blue = genuine (same class), orange = impostor (different)"
    )
    fig.suptitle(f"{title}\n{legend}", fontsize=9)
    return save_figure(fig, path)


def plot_retrieval_grid(
    images: torch.Tensor,
    labels: torch.Tensor,
    queries: torch.Tensor,
    neighbours: torch.Tensor,
    path: Path,
    title: str = "Retrieval: each query and its nearest neighbours",
    *,
    distances: torch.Tensor | None = None,
    class_names: list[str] | None = None,
) -> Path:
    """One query per row, then its top-k neighbours, nearest first, framed green when of the
    query's class and red when not; each row is labelled with its precision@k.

    Args:
        images: (M, C, H, W) uint8.
        labels: (M,) class index of each image.
        queries: (Q,) indices of the query images.
        neighbours: (Q, k) indices of each query's neighbours, nearest first.
        distances: optional (Q, k) query–neighbour distances, written above each neighbour.
        class_names: optional names of the class indices, for the query's title.
    Figure: (CELL × (k + 1) + 0.6) × (CELL × Q + 0.8) inches.
    """
    check_images(images, queries, neighbours)
    if neighbours.ndim != 2 or neighbours.shape[0] != queries.numel() or queries.numel() == 0:
        raise DataError(
            f"neighbours must be (Q, k) for {queries.numel()} queries, got {tuple(neighbours.shape)}"
        )
    q, k = neighbours.shape
    fig = new_figure(CELL * (k + 1) + 0.6, CELL * q + 0.8)
    axes = fig.subplots(q, k + 1, squeeze=False)
    for r in range(q):
        query_class = int(labels[queries[r]])
        name = (
            class_names[query_class]
            if class_names and query_class < len(class_names)
            else str(query_class)
        )
        show_image(axes[r, 0], images[queries[r]], f"query: {name}", "black", 2.5)
        right = 0
        for j in range(k):
            hit = int(labels[neighbours[r, j]]) == query_class
            right += hit
            text = f"#{j + 1}" if distances is None else f"#{j + 1} d={float(distances[r, j]):.2f}"
            show_image(
                axes[r, j + 1],
                images[neighbours[r, j]],
                text,
                RIGHT_COLOR if hit else WRONG_COLOR,
                3,
                RIGHT_COLOR if hit else WRONG_COLOR,
            )
        axes[r, 0].set_ylabel(f"P@{k} = {right / max(k, 1):.0%}", fontsize=8)
    fig.suptitle(
        f"{title}\nframe: green = same class as the query, red = another class", fontsize=9
    )
    return save_figure(fig, path)


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
        images: (M, C, H, W) uint8 images of the evaluation set (C = 1 or 3).
        support: (R, N) support index of each way (1 shot), one row per episode.
        query: (R,) index of each row's query.
        predicted: (R,) the way the model chose.
    The true way of row r's query is the way whose support shares its class; callers put it
    first: way 0 is the true class.
    Figure: (CELL × (N + 1) + 0.4) × (CELL × R + 0.8) inches.
    """
    check_images(images, support, query)
    if support.ndim != 2 or support.shape[0] == 0 or query.numel() != support.shape[0]:
        raise DataError(
            f"support must be (R, N) with one query per row, got {tuple(support.shape)}"
        )
    rows, n_way = support.shape
    fig = new_figure(CELL * (n_way + 1) + 0.4, CELL * rows + 0.8)
    axes = fig.subplots(rows, n_way + 1, squeeze=False)
    for r in range(rows):
        show_image(axes[r, 0], images[query[r]], "query" if r == 0 else "", "black", 2.5)
        for w in range(n_way):
            picked = int(predicted[r]) == w
            color = (RIGHT_COLOR if w == 0 else WRONG_COLOR) if picked else NEUTRAL_FRAME
            label = "true class" if (w == 0 and r == 0) else ""
            show_image(axes[r, w + 1], images[support[r, w]], label, color, 3.5 if picked else 1)
        axes[r, 0].set_ylabel(f"episode {r + 1}", fontsize=8)
    fig.suptitle(
        f"{title}\nframed: the model's pick (green right, red wrong); "
        "the true class's example is first",
        fontsize=9,
    )
    return save_figure(fig, path)
