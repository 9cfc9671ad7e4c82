"""Running a trained model over a dataset."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch

from siamese.devices import model_device, to_device

PROGRESS_FROM = 10_000
"""Sets at least this large show a progress bar when `embed` is asked to."""


BATCH_ELEMENTS = 2**21
"""Input elements per forward pass when no batch size is given: 2,048 MNIST digits, 170
64×64 RGB images, 32 face chips of 150×150 — the activations of one pass stay a few hundred
MB whatever the image size."""


def default_batch_size(x: Any) -> int:
    """Inputs per forward pass for examples of `x`'s shape: `BATCH_ELEMENTS` input elements,
    between 32 and 2,048 examples."""
    per_example = max(1, math.prod(int(d) for d in x.shape[1:]))
    return max(32, min(2048, BATCH_ELEMENTS // per_example))


def embed(
    model: torch.nn.Module,
    x: Any,
    batch_size: int | None = None,
    progress: bool = False,
    workers: int | None = None,
) -> torch.Tensor:
    """Embeddings of all inputs, in evaluation mode and without gradients.

    The inputs stay in host memory and go to the model's device a batch at a time (pinned,
    without blocking, on CUDA); the embeddings stay on the model's device, where the
    distances and metrics that use them are computed.

    Args:
        model: maps (B, ...) inputs to (B, D) embeddings.
        x: (N, ...) inputs: a tensor, or images streamed from files
            (`siamese.data.folders.streamed.StreamedImages`), decoded by `workers` DataLoader
            worker processes (0: in this process; None: the images' own `workers`).
        batch_size: inputs per forward pass (bounds memory; None: `default_batch_size`).
        progress: show a progress bar (on stderr) when N >= `PROGRESS_FROM`.
    Returns:
        (N, D) float32 embeddings on the model's device.
    """
    device = model_device(model)
    batch_size = batch_size or default_batch_size(x)
    was_training = model.training
    model.eval()
    n = int(x.shape[0])
    bar = count_bar(progress and n >= PROGRESS_FROM)
    # One (N, D) output filled batch by batch, not a list of pieces joined at the end: small
    # long-lived pieces between each pass's large short-lived buffers keep the heap from
    # reusing them, and a process embedding 100,000 images grew by GBs (measured).
    out: torch.Tensor | None = None
    done = 0
    try:
        # no_grad, not inference_mode: the output is an ordinary tensor that callers may use
        # under autograd (a novelty probe trains on it).
        with bar as shown, torch.no_grad():
            task = shown.add_task(f"embedding {n:,}", total=n) if shown else None
            for inputs in input_batches(x, batch_size, workers):
                z = model(to_device(inputs, device)).float()
                if out is None:
                    out = torch.empty((n, z.shape[1]), dtype=torch.float32, device=device)
                out[done : done + z.shape[0]] = z
                done += z.shape[0]
                if shown is not None:
                    shown.advance(task, z.shape[0])
    finally:
        model.train(was_training)
    return out if out is not None else torch.empty(0, 0, device=device)


def input_batches(x: Any, batch_size: int, workers: int | None = None) -> Iterator[torch.Tensor]:
    """(B, ...) consecutive batches of `x` in host memory: slices of a tensor, or files
    decoded by `workers` DataLoader processes for streamed images (None: their own
    `workers`)."""
    n = int(x.shape[0])
    if isinstance(x, torch.Tensor):
        for start in range(0, n, batch_size):
            yield x[start : start + batch_size]
        return
    from siamese.data.batches import load_batches, ranges

    count = getattr(x, "workers", 0) if workers is None else workers
    with load_batches(x, ranges(n, batch_size), workers=count) as batches:
        yield from batches


def count_bar(show: bool) -> contextlib.AbstractContextManager:
    """A transient "description ━━━ done/total" rich bar on stderr (`embed`, `embed_files`,
    the evaluation's stages), or a no-op context giving None when not `show`."""
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
