"""Running a trained model over a dataset."""

from __future__ import annotations

import torch


def embed(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Embeddings of all inputs, in evaluation mode and without gradients.

    Args:
        model: maps (B, ...) inputs to (B, D) embeddings.
        x: (N, ...) inputs.
        batch_size: inputs per forward pass (bounds memory).
    Returns:
        (N, D) float32 embeddings.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            parts = [model(x[i : i + batch_size]).float() for i in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0, 0)
