"""What every figure shares: the class palette, the fixed colours, figure creation and saving,
and drawing one image in a panel.

Figures are `matplotlib.figure.Figure` objects drawn on an Agg canvas; pyplot is never used, so
no figure is registered with pyplot's state (nothing to close, nothing leaks between calls) and
importing `siamese.plots` does not change the user's matplotlib backend.

Every PNG is written at `DPI` dots per inch without tight cropping, so its pixel size is its
figure size in inches times `DPI` — each function's docstring gives its figure size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from siamese.errors import DataError

DPI = 100
"""Dots per inch of every PNG: a figure of (w, h) inches is (w·DPI, h·DPI) pixels."""

TRAINED_COLOR = "#1f77b4"
BASELINE_COLOR = "#7f7f7f"
SECOND_COLOR = "#ff7f0e"
RIGHT_COLOR = "#2ca02c"
WRONG_COLOR = "#d62728"
NEUTRAL_FRAME = "#dddddd"
GENUINE_COLOR = "#1f77b4"
IMPOSTOR_COLOR = "#ff7f0e"
LINE_COLORS = (TRAINED_COLOR, BASELINE_COLOR, "#9467bd", "#8c564b", "#e377c2", "#17becf")

# tab20's strong shades first, then its light ones: the first 10 classes are easy to tell apart.
_TAB20 = (
    (0.122, 0.467, 0.706),
    (1.000, 0.498, 0.055),
    (0.173, 0.627, 0.173),
    (0.839, 0.153, 0.157),
    (0.580, 0.404, 0.741),
    (0.549, 0.337, 0.294),
    (0.890, 0.467, 0.761),
    (0.498, 0.498, 0.498),
    (0.737, 0.741, 0.133),
    (0.090, 0.745, 0.812),
    (0.682, 0.780, 0.910),
    (1.000, 0.733, 0.471),
    (0.596, 0.875, 0.541),
    (1.000, 0.596, 0.588),
    (0.773, 0.690, 0.835),
    (0.769, 0.612, 0.580),
    (0.969, 0.714, 0.824),
    (0.780, 0.780, 0.780),
    (0.859, 0.859, 0.553),
    (0.620, 0.855, 0.898),
)
PALETTE: tuple[tuple[float, float, float], ...] = _TAB20


def class_colors(classes: Sequence[int]) -> dict[int, tuple[float, float, float]]:
    """The colour of each class index: `PALETTE[class % 20]`, so a class keeps its colour in
    every figure. When two of `classes` would share a colour that way (indices 20 apart), the
    classes are coloured by their rank in sorted order instead, so one figure never shows two
    classes in the same colour while it has at most 20 of them."""
    unique = sorted({int(c) for c in classes})
    if len({c % len(PALETTE) for c in unique}) == len(unique):
        return {c: PALETTE[c % len(PALETTE)] for c in unique}
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(unique)}


def class_name(class_names: Sequence[str] | None, index: int) -> str:
    """`class_names[index]` when there is one, else the index as text."""
    if class_names is not None and 0 <= index < len(class_names):
        return str(class_names[index])
    return str(index)


def new_figure(width: float, height: float) -> Figure:
    """A figure of `width` × `height` inches with constrained layout (titles and labels are
    fitted inside the fixed size instead of cropping it)."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: Path) -> Path:
    """Write `fig` to `path` as a PNG at `DPI` (pixel size = figure size × DPI), creating the
    folder; returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    fig.clear()
    return path


def image_array(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """An image as a numpy array matplotlib shows: (H, W) for grey, (H, W, 3|4) for colour.

    Args:
        image: (C, H, W) with C = 1, 3 or 4, or (H, W); uint8 in 0…255, or float in 0…1.
    """
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 3:
        if a.shape[0] == 1:
            a = a[0]
        elif a.shape[0] in (3, 4):
            a = np.transpose(a, (1, 2, 0))
        else:
            raise DataError(f"an image must be (C, H, W) with C = 1, 3 or 4, got {a.shape}")
    elif a.ndim != 2:
        raise DataError(f"an image must be (C, H, W) or (H, W), got shape {a.shape}")
    if a.dtype == np.uint8:
        return a
    a = np.nan_to_num(a.astype(np.float64), nan=0.0)
    if a.max(initial=0.0) > 1.0:
        a = a / 255.0
    return (np.clip(a, 0.0, 1.0) * 255).round().astype(np.uint8)


def show_image(
    ax: Axes,
    image: torch.Tensor | np.ndarray,
    title: str = "",
    frame: str | tuple[float, ...] = NEUTRAL_FRAME,
    width: float = 1.0,
    title_color: str | tuple[float, ...] = "black",
) -> None:
    """Draw one image in `ax` without ticks, framed in `frame` with line width `width`.

    Args:
        image: (C, H, W) uint8 (C = 1 grey, 3 RGB) or (H, W); see `image_array`.
    """
    a = image_array(image)
    if a.ndim == 2:
        ax.imshow(a, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(a, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color(frame)
        spine.set_linewidth(width)
    if title:
        ax.set_title(title, fontsize=8, color=title_color)


def check_images(images: torch.Tensor, *indices: torch.Tensor) -> None:
    """Raise `DataError` unless `images` is (M, C, H, W) and every index is in 0…M-1."""
    if images.ndim != 4:
        raise DataError(f"images must be (M, C, H, W), got shape {tuple(images.shape)}")
    for index in indices:
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= images.shape[0]):
            raise DataError(f"an image index is outside 0…{images.shape[0] - 1}")
