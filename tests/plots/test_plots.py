"""Every figure renders to a non-empty PNG of its documented pixel size, handles the edge
cases (one class, two points, constant embeddings) and leaves no pyplot figure open."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from siamese.errors import ConfigError, DataError
from siamese.evaluation.verification import roc_curve
from siamese.plots import (
    DPI,
    SweepPanel,
    class_colors,
    plot_distance_histograms,
    plot_embedding_2d,
    plot_embedding_evolution,
    plot_margin_sweep,
    plot_oneshot_episodes,
    plot_pair_grid,
    plot_retrieval_grid,
    plot_roc,
    plot_training_curves,
    plot_triplet_grid,
    project_2d,
)
from siamese.plots.curves import training_curve_panels
from siamese.plots.grids import CELL

HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None
HAS_UMAP = importlib.util.find_spec("umap") is not None


def check_png(path: Path, width_in: float, height_in: float) -> None:
    """The PNG exists, has figure size × DPI pixels, is not one colour, and no figure is open."""
    assert path.is_file()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (round(width_in * DPI), round(height_in * DPI))
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 2
    assert plt.get_fignums() == []


def clustered(
    n_classes: int = 4, per_class: int = 6, dim: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    centers = torch.randn(n_classes, dim) * 3
    return centers[labels] + torch.randn(labels.numel(), dim), labels


def tiny_images(m: int = 24, channels: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (m, channels, 12, 12), dtype=torch.uint8)


# --- embedding scatter -------------------------------------------------------------------


def test_embedding_scatter(tmp_path: Path) -> None:
    z, y = clustered()
    out = plot_embedding_2d(z, y, list("abcd"), tmp_path / "e.png", "emb", method="pca")
    assert out == tmp_path / "e.png"
    check_png(out, 7.5, 6)


def test_embedding_scatter_with_rgb_thumbnails(tmp_path: Path) -> None:
    z, y = clustered()
    images = tiny_images(z.shape[0], channels=3)
    path = plot_embedding_2d(z, y, None, tmp_path / "t.png", "thumbs", images=images, thumbnails=5)
    check_png(path, 7.5, 6)


@pytest.mark.skipif(not HAS_SKLEARN, reason="t-SNE needs scikit-learn (a dev dependency)")
def test_embedding_scatter_tsne(tmp_path: Path) -> None:
    z, y = clustered(3, 4)
    path = plot_embedding_2d(z, y, None, tmp_path / "t.png", "t-SNE", method="tsne", perplexity=2)
    check_png(path, 7.5, 6)


@pytest.mark.skipif(not HAS_UMAP, reason="umap-learn is not installed")
def test_embedding_scatter_umap(tmp_path: Path) -> None:
    z, y = clustered(3, 5)
    check_png(plot_embedding_2d(z, y, None, tmp_path / "u.png", "UMAP", method="umap"), 7.5, 6)


@pytest.mark.skipif(HAS_UMAP, reason="umap-learn is installed")
def test_umap_missing_names_the_package() -> None:
    z, y = clustered()
    with pytest.raises(ConfigError, match="umap-learn"):
        project_2d(z, "umap", y)


def test_unknown_projection_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="pca"):
        project_2d(torch.randn(5, 3), "lda")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("z", "y"),
    [
        (torch.randn(10, 4), torch.zeros(10, dtype=torch.long)),  # one class
        (torch.randn(2, 4), torch.tensor([0, 1])),  # two points
        (torch.ones(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])),  # constant: zero variance
        (torch.randn(5, 1), torch.tensor([0, 1, 0, 1, 2])),  # one dimension
        (torch.randn(1, 3), torch.tensor([7])),  # one point, a class index past the names
    ],
)
def test_embedding_edge_cases(tmp_path: Path, z: torch.Tensor, y: torch.Tensor) -> None:
    for method in ("class_pca", "pca"):
        xy = project_2d(z, method, y)
        assert xy.shape == (z.shape[0], 2) and np.isfinite(xy).all()
    path = plot_embedding_2d(z, y, ["a", "b", "c"], tmp_path / "x.png", "edge")
    check_png(path, 7.5, 6)


@pytest.mark.skipif(not HAS_SKLEARN, reason="t-SNE needs scikit-learn (a dev dependency)")
@pytest.mark.parametrize("z", [torch.randn(2, 4), torch.ones(6, 4), torch.randn(3, 1)])
def test_tsne_falls_back_to_pca_without_a_spread(z: torch.Tensor) -> None:
    xy = project_2d(z, "tsne")
    np.testing.assert_allclose(xy, project_2d(z, "pca"))


def test_nan_embeddings_are_a_data_error(tmp_path: Path) -> None:
    z = torch.randn(4, 3)
    z[1, 1] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        plot_embedding_2d(z, torch.arange(4), None, tmp_path / "n.png", "nan")
    assert plt.get_fignums() == []


def test_pca_projection_matches_the_principal_components() -> None:
    z = torch.randn(50, 5, dtype=torch.float64) * torch.tensor([5.0, 3.0, 1.0, 0.5, 0.1])
    xy = project_2d(z, "pca")
    centred = (z - z.mean(0)).numpy()
    # The projection keeps the two largest variances, in order.
    s = np.linalg.svd(centred, compute_uv=False)
    np.testing.assert_allclose(np.linalg.norm(xy, axis=0), s[:2], rtol=1e-9)


def test_class_colours_are_fixed_by_class_index_and_distinct() -> None:
    assert class_colors([3, 1])[3] == class_colors([3, 5, 7])[3]
    colours = class_colors([0, 20, 5])  # 0 and 20 would collide on the palette
    assert len(set(colours.values())) == 3


# --- evolution and sweep ------------------------------------------------------------------


def test_embedding_evolution(tmp_path: Path) -> None:
    z, y = clustered()
    snapshots = [(epoch, z * epoch / 5 + torch.randn_like(z)) for epoch in (1, 2, 3, 5, 8)]
    path = plot_embedding_evolution(snapshots, y, tmp_path / "ev.png", columns=3)
    check_png(path, 3 * 3, 3 * 2 + 0.5)
    each = plot_embedding_evolution(snapshots[:2], y, tmp_path / "each.png", align="each")
    check_png(each, 3 * 2, 3 + 0.5)


def test_embedding_evolution_edge_cases(tmp_path: Path) -> None:
    y = torch.zeros(2, dtype=torch.long)
    snapshots = [(0, torch.zeros(2, 3)), (1, torch.ones(2, 3))]
    check_png(plot_embedding_evolution(snapshots, y, tmp_path / "ev.png"), 3 * 2, 3.5)
    with pytest.raises(DataError):
        plot_embedding_evolution([], y, tmp_path / "none.png")


def test_margin_sweep(tmp_path: Path) -> None:
    panels = []
    for margin in (0.0, 0.2, 0.4, 0.9):
        z, y = clustered()
        panels.append(
            SweepPanel(margin, z * margin, y, {"accuracy": 0.5 + margin / 2, "MAP@R": margin})
        )
    path = plot_margin_sweep(panels, tmp_path / "sweep.png", class_names=list("abcd"), columns=3)
    check_png(path, 3 * 3, 3 * 2 + 0.9)


def test_margin_sweep_single_constant_panel(tmp_path: Path) -> None:
    panel = SweepPanel(
        0.0, torch.zeros(3, 4), torch.zeros(3, dtype=torch.long), {"accuracy": math.nan}
    )
    check_png(plot_margin_sweep([panel], tmp_path / "s.png"), 3, 3.9)


# --- curves and verification --------------------------------------------------------------


def test_training_curves_from_records_and_metrics_rows(tmp_path: Path) -> None:
    records: list[dict[str, float | str]] = [
        {
            "step": float(s),
            "kind": "train",
            "loss": 1 / (1 + s),
            "active_fraction": 0.5,
            "mean_pos_dist": 0.3,
            "mean_neg_dist": 0.9,
        }
        for s in range(10)
    ]
    records.append(
        {
            "step": 9.0,
            "kind": "validation",
            "val_precision_at_1": 0.7,
            "val_roc_auc": 0.9,
            "val_eer": math.nan,
        }
    )
    assert training_curve_panels(records) == 3
    check_png(plot_training_curves(records, tmp_path / "c.png"), 8, 0.4 + 2.6 * 3)


def test_training_curves_loss_only_and_one_row(tmp_path: Path) -> None:
    records = [{"step": 0.0, "loss": 0.0}]
    assert training_curve_panels(records) == 1
    check_png(plot_training_curves(records, tmp_path / "c.png", "one row"), 8, 3.0)
    with pytest.raises(DataError):
        plot_training_curves([], tmp_path / "none.png")


def test_roc_with_eer_point(tmp_path: Path) -> None:
    distances = torch.cat([torch.rand(20), torch.rand(20) + 0.5])
    same = torch.cat([torch.ones(20), torch.zeros(20)]).long()
    curve = roc_curve(distances, same)
    curves = {"model": (curve, curve.auc(), curve.eer()), "baseline": (curve, 0.5, 0.5)}
    check_png(plot_roc(curves, tmp_path / "roc.png", "ROC"), 6, 5.5)


def test_distance_histograms(tmp_path: Path) -> None:
    distances = torch.cat([torch.rand(30), torch.rand(30) + 0.6])
    same = torch.cat([torch.ones(30), torch.zeros(30)]).long()
    check_png(plot_distance_histograms(distances, same, tmp_path / "h.png"), 7, 4.5)
    check_png(plot_distance_histograms(distances, same, tmp_path / "h2.png", threshold=0.8), 7, 4.5)


def test_distance_histograms_edge_cases(tmp_path: Path) -> None:
    only_genuine = plot_distance_histograms(torch.ones(3), torch.ones(3), tmp_path / "g.png")
    check_png(only_genuine, 7, 4.5)
    constant = plot_distance_histograms(
        torch.zeros(4), torch.tensor([1, 0, 1, 0]), tmp_path / "c.png"
    )
    check_png(constant, 7, 4.5)
    with pytest.raises(DataError):
        plot_distance_histograms(torch.tensor([float("nan")]), torch.ones(1), tmp_path / "n.png")


# --- image grids ------------------------------------------------------------------------


def test_triplet_grid(tmp_path: Path) -> None:
    images = tiny_images(channels=3)
    a, p, n = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8])
    path = plot_triplet_grid(
        images,
        a,
        p,
        n,
        tmp_path / "tri.png",
        ap_distances=torch.tensor([0.1, 0.5, 0.2]),
        an_distances=torch.tensor([0.9, 0.4, 0.3]),
        margin=0.2,
    )
    check_png(path, 3 * CELL + 0.4, CELL * 3 + 0.6)
    one = plot_triplet_grid(images, a[:1], p[:1], n[:1], tmp_path / "one.png")
    check_png(one, 3 * CELL + 0.4, CELL + 0.6)


def test_pair_grid(tmp_path: Path) -> None:
    images = tiny_images()
    first, second = torch.arange(5), torch.arange(5, 10)
    same = torch.tensor([1, 0, 1, 0, 1])
    path = plot_pair_grid(
        images,
        first,
        second,
        same,
        tmp_path / "pairs.png",
        distances=torch.rand(5),
        pairs_per_row=3,
    )
    check_png(path, 2 * CELL * 3 + 0.3 * 2, CELL * 2 + 0.7)
    predicted = plot_pair_grid(
        images,
        first[:1],
        second[:1],
        same[:1],
        tmp_path / "p1.png",
        predicted_same=torch.tensor([0]),
    )
    check_png(predicted, 2 * CELL, CELL + 0.7)


def test_retrieval_grid(tmp_path: Path) -> None:
    images = tiny_images(channels=3)
    labels = torch.arange(24) % 4
    queries = torch.tensor([0, 1])
    neighbours = torch.tensor([[4, 8, 5], [5, 2, 9]])
    path = plot_retrieval_grid(
        images,
        labels,
        queries,
        neighbours,
        tmp_path / "r.png",
        distances=torch.rand(2, 3),
        class_names=["w", "x", "y", "z"],
    )
    check_png(path, CELL * 4 + 0.6, CELL * 2 + 0.8)
    with pytest.raises(DataError):
        plot_retrieval_grid(images, labels, queries, torch.tensor([[99]]), tmp_path / "bad.png")


def test_oneshot_episodes(tmp_path: Path) -> None:
    images = tiny_images(channels=1)
    support = torch.arange(10).view(2, 5)
    path = plot_oneshot_episodes(
        images,
        support,
        torch.tensor([20, 21]),
        torch.tensor([0, 3]),
        tmp_path / "o.png",
        "one-shot",
    )
    check_png(path, CELL * 6 + 0.4, CELL * 2 + 0.8)


def test_no_pyplot_state_is_touched(tmp_path: Path) -> None:
    before = plt.get_fignums()
    z, y = clustered()
    plot_embedding_2d(z, y, None, tmp_path / "a.png", "a")
    assert plt.get_fignums() == before == []
