"""Pairwise distances between embeddings, numerically safe.

All metrics are computed in float32 (bf16/fp16 inputs are upcast; float64 stays float64), never negative, and
the Euclidean distance has a finite gradient everywhere, including at zero distance.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import torch

from siamese.errors import ConfigError

Metric = Literal["euclidean", "sqeuclidean", "cosine"]
METRICS: tuple[str, ...] = ("euclidean", "sqeuclidean", "cosine")


def as_distance_dtype(x: torch.Tensor) -> torch.Tensor:
    """float32 for every input but float64, which stays float64 (for references and gradcheck)."""
    return x if x.dtype == torch.float64 else x.float()


def check_metric(metric: str) -> None:
    """Raise `ConfigError` unless `metric` is one of `METRICS`."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")


class _SafeSqrt(torch.autograd.Function):
    """sqrt with gradient 0 where the input is 0 (where sqrt' is infinite)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, squared: torch.Tensor) -> torch.Tensor:
        root = squared.clamp_min(0.0).sqrt()
        ctx.save_for_backward(root)
        return root

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (root,) = ctx.saved_tensors
        # One pass: 0.5 / root is inf where root is 0; those entries become 0.
        scale = (0.5 / root).nan_to_num(posinf=0.0)
        return grad * scale


def safe_sqrt(squared: torch.Tensor) -> torch.Tensor:
    """Square root whose gradient is 0 (not inf or NaN) where the input is 0.

    Args:
        squared: any shape, values >= 0 (negative rounding noise is clamped to 0).
    Returns:
        same shape as `squared`.
    """
    return _SafeSqrt.apply(squared)


class _EuclideanPairwise(torch.autograd.Function):
    """(Squared) Euclidean distances with a closed-form backward.

    Forward: one addmm and in-place clamping, so the only (N, M) tensor kept is the result.
    Backward: with W = G / D (0 where D = 0; W = 2G for squared distances),
    dx = rowsum(W)·x − W·y and dy = colsum(W)·y − Wᵀ·x: two matrix products, no chain of
    element-wise (N, M) temporaries.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        y: torch.Tensor | None,
        squared: bool,
        same: bool,
    ) -> torch.Tensor:
        if same:
            y = x
        x_sq = (x * x).sum(dim=1, keepdim=True)
        y_sq = x_sq if same else (y * y).sum(dim=1, keepdim=True)
        dist = torch.addmm(x_sq, x, y.T, alpha=-2.0).add_(y_sq.T).clamp_(min=0.0)
        if same:
            dist.fill_diagonal_(0.0)  # exactly 0, not rounding noise
        if not squared:
            dist.sqrt_()
        if same:
            ctx.save_for_backward(x, dist)
        else:
            ctx.save_for_backward(x, y, dist)
        ctx.squared, ctx.same = squared, same
        return dist

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        if ctx.same:
            x, dist = ctx.saved_tensors
        else:
            x, y, dist = ctx.saved_tensors
        if ctx.squared:
            weight = grad * 2.0
        else:
            # d‖x − y‖ / dx = (x − y) / ‖x − y‖, taken as 0 where the distance is 0.
            weight = dist.reciprocal().nan_to_num_(posinf=0.0).mul_(grad)
        if ctx.same:
            # x is both sides: add the two contributions. (Two products beat one product
            # with W + Wᵀ: the transposed sum alone costs more than a product here.)
            sums = weight.sum(dim=1, keepdim=True) + weight.sum(dim=0)[:, None]
            return sums * x - weight @ x - weight.T @ x, None, None, None
        grad_x = grad_y = None
        if ctx.needs_input_grad[0]:
            grad_x = weight.sum(dim=1, keepdim=True) * x - weight @ y
        if ctx.needs_input_grad[1]:
            grad_y = weight.sum(dim=0)[:, None] * y - weight.T @ x
        return grad_x, grad_y, None, None


def pairwise_distances(
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    metric: Metric | str = "euclidean",
) -> torch.Tensor:
    """Distances between every row of `x` and every row of `y`.

    `sqeuclidean` is ‖a‖² + ‖b‖² − 2ab (one addmm), clamped at 0; `euclidean` is its safe
    square root; `cosine` is the cosine *distance* 1 − cos(a, b), in [0, 2]. When `y` is
    omitted the distances are within `x` and the diagonal is exactly 0.

    Args:
        x: (N, D) embeddings, any floating dtype.
        y: (M, D) embeddings, or None for `x` itself.
        metric: "euclidean", "sqeuclidean" or "cosine".
    Returns:
        (N, M) float32 (float64 for float64 inputs) distances, >= 0.

    Example:
        >>> import torch
        >>> from siamese import pairwise_distances
        >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
        >>> pairwise_distances(x)
        tensor([[0., 5.],
                [5., 0.]])
        >>> y = torch.tensor([[1.0, 0.0]])
        >>> pairwise_distances(x, y, metric="sqeuclidean").flatten().tolist()
        [1.0, 20.0]
        >>> pairwise_distances(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), metric="cosine")
        tensor([[0., 1.],
                [1., 0.]])
    """
    check_metric(metric)
    x = as_distance_dtype(x)
    same = y is None
    y = x if y is None else as_distance_dtype(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"expected (N, D) and (M, D) tensors, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if metric == "cosine":
        xn = torch.nn.functional.normalize(x, dim=1, eps=1e-12)
        yn = xn if same else torch.nn.functional.normalize(y, dim=1, eps=1e-12)
        dist = (1.0 - xn @ yn.T).clamp_min(0.0)
        if same:
            # Rounding leaves the diagonal slightly positive; it is exactly 0 by definition.
            dist = dist.masked_fill(
                torch.eye(dist.shape[0], dtype=torch.bool, device=dist.device), 0.0
            )
        return dist
    # Within one set, y is passed as None so that x receives both sides' gradient at once.
    return _EuclideanPairwise.apply(x, None if same else y, metric == "sqeuclidean", same)


def paired_distances(
    a: torch.Tensor, b: torch.Tensor, metric: Metric | str = "euclidean"
) -> torch.Tensor:
    """Distance between row i of `a` and row i of `b`, for every i.

    Args:
        a: (N, D) embeddings.
        b: (N, D) embeddings.
        metric: "euclidean", "sqeuclidean" or "cosine".
    Returns:
        (N,) float32 distances, >= 0.
    """
    check_metric(metric)
    a, b = as_distance_dtype(a), as_distance_dtype(b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"expected two (N, D) tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if metric == "cosine":
        cos = torch.nn.functional.cosine_similarity(a, b, dim=1, eps=1e-12)
        return (1.0 - cos).clamp_min(0.0)
    squared = ((a - b) ** 2).sum(dim=1)
    return squared if metric == "sqeuclidean" else safe_sqrt(squared)


def batched_pairwise_distances(
    x: torch.Tensor, y: torch.Tensor, metric: Metric | str = "euclidean"
) -> torch.Tensor:
    """`pairwise_distances` for a batch of independent sets (no gradient care: for evaluation).

    Args:
        x: (E, N, D) embeddings.
        y: (E, R, D) embeddings.
        metric: "euclidean", "sqeuclidean" or "cosine".
    Returns:
        (E, N, R) float32 distances, >= 0.
    """
    check_metric(metric)
    x, y = as_distance_dtype(x), as_distance_dtype(y)
    if metric == "cosine":
        xn = torch.nn.functional.normalize(x, dim=-1, eps=1e-12)
        yn = torch.nn.functional.normalize(y, dim=-1, eps=1e-12)
        return (1.0 - xn @ yn.transpose(1, 2)).clamp_min(0.0)
    squared = (
        (x * x).sum(-1, keepdim=True) + (y * y).sum(-1)[:, None, :] - 2.0 * (x @ y.transpose(1, 2))
    ).clamp_min(0.0)
    return squared if metric == "sqeuclidean" else squared.sqrt()


def distance_blocks(
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    metric: Metric | str = "euclidean",
    block_rows: int = 1024,
    exclude_self: bool = False,
) -> Iterator[tuple[int, torch.Tensor]]:
    """`pairwise_distances(x, y)` one block of query rows at a time, so that memory stays at
    `block_rows × M` however large N is: the one loop over distance blocks that nearest
    neighbours, retrieval metrics and novelty scores share.

    With `y` omitted, each row's distance to itself is exactly 0, as in `pairwise_distances`,
    or +inf with `exclude_self` (so that a leave-one-out search never finds the query).

    The caller should drop its reference to a block (`del block`) before asking for the next
    one; then only one block exists at a time.

    Args:
        x: (N, D) queries.
        y: (M, D) references, or None for `x` itself.
        metric: "euclidean", "sqeuclidean" or "cosine".
        block_rows: query rows per block.
        exclude_self: with `y` None, set each query's own column to +inf.
    Yields:
        (start, block): block is the (min(block_rows, N − start), M) distances of rows
        start, start + 1, … of `x`.
    """
    check_metric(metric)
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    reference = x if y is None else y
    self_distance = float("inf") if exclude_self else 0.0
    for start in range(0, x.shape[0], block_rows):
        block = pairwise_distances(x[start : start + block_rows], reference, metric)
        if y is None:
            rows = torch.arange(block.shape[0], device=block.device)
            block[rows, rows + start] = self_distance
        yield start, block
        del block  # the caller's reference is the only one left while the next is computed
