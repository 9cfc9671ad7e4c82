"""Running a trained model over a dataset."""

from __future__ import annotations

import contextlib

import torch

PROGRESS_FROM = 10_000
"""Sets at least this large show a progress bar when `embed` is asked to."""


def embed(
    model: torch.nn.Module, x: torch.Tensor, batch_size: int = 2048, progress: bool = False
) -> torch.Tensor:
    """Embeddings of all inputs, in evaluation mode and without gradients.

    Args:
        model: maps (B, ...) inputs to (B, D) embeddings.
        x: (N, ...) inputs.
        batch_size: inputs per forward pass (bounds memory).
        progress: show a progress bar (on stderr) when N >= `PROGRESS_FROM`.
    Returns:
        (N, D) float32 embeddings.
    """
    was_training = model.training
    model.eval()
    starts = range(0, x.shape[0], batch_size)
    bar = _progress_bar(progress and x.shape[0] >= PROGRESS_FROM)
    try:
        with bar as shown, torch.inference_mode():
            task = shown.add_task(f"embedding {x.shape[0]:,}", total=x.shape[0]) if shown else None
            parts = []
            for i in starts:
                parts.append(model(x[i : i + batch_size]).float())
                if shown is not None:
                    shown.advance(task, parts[-1].shape[0])
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0, 0)


def _progress_bar(show: bool) -> contextlib.AbstractContextManager:
    if not show:
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    )
