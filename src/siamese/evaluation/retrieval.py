"""Retrieval metrics over embeddings: nearest neighbours in a gallery.

With no reference set given, the queries are also the gallery and each query's own entry is
left out (leave-one-out). Queries whose class has no other gallery item cannot be answered
right and are left out of the mean (`answerable_queries` counts the rest). Distances are
computed one block of queries at a time, so an N × N matrix never exists.
"""

from __future__ import annotations

import torch

from siamese.distances import Metric, distance_blocks
from siamese.errors import DataError


def answerable_queries(
    labels: torch.Tensor, ref_labels: torch.Tensor | None = None
) -> torch.Tensor:
    """(N,) bool: which queries have at least one gallery item of their class (besides
    themselves when the queries are the gallery)."""
    gallery = labels if ref_labels is None else ref_labels
    classes, counts = torch.unique(gallery, return_counts=True)
    position = torch.searchsorted(classes, labels).clamp_max(classes.numel() - 1)
    present = classes[position] == labels
    needed = 2 if ref_labels is None else 1
    return present & (counts[position] >= needed)


def nearest_neighbours(
    embeddings: torch.Tensor,
    ref_embeddings: torch.Tensor | None = None,
    metric: Metric | str = "euclidean",
    block_rows: int = 1024,
) -> torch.Tensor:
    """(N,) int64 index of each query's nearest gallery item (never itself when the queries
    are the gallery; ties go to the lowest index).

    Args:
        embeddings: (N, D) queries; ref_embeddings: (M, D) gallery or None for the queries.
    """
    out = torch.empty(embeddings.shape[0], dtype=torch.long)
    for start, block in distance_blocks(embeddings, ref_embeddings, metric, block_rows):
        if ref_embeddings is None:
            rows = torch.arange(block.shape[0])
            block[rows, rows + start] = float("inf")
        out[start : start + block.shape[0]] = block.argmin(dim=1)
    return out


def precision_at_1(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    ref_embeddings: torch.Tensor | None = None,
    ref_labels: torch.Tensor | None = None,
    metric: Metric | str = "euclidean",
) -> float:
    """Share of answerable queries whose nearest gallery item has their class (1-NN accuracy).

    Args:
        embeddings: (N, D); labels: (N,) int64.
        ref_embeddings: (M, D) gallery, ref_labels: (M,), or both None for leave-one-out.
    Raises:
        DataError: no query is answerable (every class has a single item), or mismatched
            shapes.
    """
    if (ref_embeddings is None) != (ref_labels is None):
        raise ValueError("give both ref_embeddings and ref_labels, or neither")
    if embeddings.shape[0] != labels.shape[0] or (
        ref_labels is not None and ref_embeddings.shape[0] != ref_labels.shape[0]
    ):
        raise DataError("embeddings and labels differ in length")
    keep = answerable_queries(labels, ref_labels)
    if not bool(keep.any()):
        raise DataError("precision@1 needs a class with 2 or more examples; every class has one")
    if ref_embeddings is None:  # every query is also in the gallery
        hits = labels[nearest_neighbours(embeddings, None, metric)] == labels
        return float(hits[keep].double().mean())
    nearest = nearest_neighbours(embeddings[keep], ref_embeddings, metric)
    return float((ref_labels[nearest] == labels[keep]).double().mean())
