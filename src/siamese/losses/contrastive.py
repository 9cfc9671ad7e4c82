"""Contrastive loss (Hadsell, Chopra and LeCun 2006). Pair labels: 1 = same class (genuine),
0 = different (impostor)."""

from __future__ import annotations

import torch

from siamese.distances import Metric, as_distance_dtype, check_metric, paired_distances
from siamese.errors import ConfigError
from siamese.losses.labelled_batch import LabelledBatch, LabelledBatchLoss
from siamese.losses.output import LossOutput


def _contrastive_terms(
    d: torch.Tensor, same: torch.Tensor, margin: float, pos_margin: float
) -> torch.Tensor:
    """Per-pair contrastive terms with autograd (the per-pair functional form)."""
    return torch.where(same, torch.relu(d - pos_margin) ** 2, torch.relu(margin - d) ** 2)


def contrastive_loss(
    x1: torch.Tensor,
    x2: torch.Tensor,
    same: torch.Tensor,
    margin: float = 1.0,
    metric: Metric | str = "euclidean",
    pos_margin: float = 0.0,
) -> torch.Tensor:
    """Per-pair contrastive loss (Hadsell, Chopra and LeCun 2006):
    `same·max(0, d − pos_margin)² + (1 − same)·max(0, margin − d)²`.

    Args:
        x1, x2: (N, D) embeddings of the two sides of each pair.
        same: (N,) pair labels, 1 = same class (genuine), 0 = different (impostor).
        margin: impostor pairs closer than this are pushed apart.
        metric: distance between the two embeddings.
        pos_margin: genuine pairs closer than this cost nothing (0: the original loss).
    Returns:
        (N,) float32 losses, unreduced.

    Example:
        >>> import torch
        >>> from siamese import contrastive_loss
        >>> x1 = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
        >>> x2 = torch.tensor([[0.3, 0.4], [0.3, 0.4]])  # both pairs at distance 0.5
        >>> contrastive_loss(x1, x2, torch.tensor([1, 0]), margin=1.0)  # 0.5², (1 − 0.5)²
        tensor([0.2500, 0.2500])
    """
    d = paired_distances(x1, x2, metric)
    return _contrastive_terms(d, same.bool(), margin, pos_margin)


_CPU_BLOCK_ELEMENTS = 1 << 17
"""Pairs per block on the CPU: a block's four (b, R) buffers stay in the cache."""
_CPU_MIN_BLOCK_ROWS = 64
"""Rows per block on the CPU at least: fewer slow the matrix products down."""
_DEVICE_BLOCK_ELEMENTS = 1 << 25
"""Pairs per block on an accelerator: large blocks, few kernel launches."""


class ContrastiveLoss(LabelledBatchLoss):
    """Contrastive loss over every pair of a labelled batch: pairs i < j (or every
    batch × reference pair), genuine when the labels are equal (1 = same class), with the
    terms of `contrastive_loss`; the loss is their mean over all pairs.

    Computed a block of rows at a time, without autograd through the (B, R) distances: each
    block's distances, terms, statistics and gradient with respect to the embeddings are
    computed together while the block is in the cache, and the loss is attached to the
    embeddings by the gradient (see `_contrastive_blocks`). No (B, R) tensor is kept for the
    backward pass, which is one (B, D) multiplication. Gradients are exact to first order
    (no second derivatives). Memory: a few (b, R) blocks, O(B·R) at most.

    Example:
        >>> import torch
        >>> from siamese import ContrastiveLoss
        >>> _ = torch.manual_seed(0)
        >>> embeddings = torch.randn(6, 3, requires_grad=True)
        >>> labels = torch.tensor([0, 0, 1, 1, 2, 2])
        >>> out = ContrastiveLoss(margin=1.0)(embeddings, labels)
        >>> round(out.loss.item(), 4), out.stats["n_valid"]  # 15 pairs i < j
        (1.3991, 15.0)
        >>> out.loss.backward()
        >>> tuple(embeddings.grad.shape)
        (6, 3)
    """

    def __init__(
        self, margin: float = 1.0, metric: Metric | str = "euclidean", pos_margin: float = 0.0
    ) -> None:
        super().__init__()
        check_metric(metric)
        if margin < 0 or pos_margin < 0:
            raise ConfigError(
                f"contrastive margins must be >= 0, got margin={margin}, pos_margin={pos_margin}"
            )
        self.margin, self.metric, self.pos_margin = float(margin), metric, float(pos_margin)

    def batch_loss(self, batch: LabelledBatch) -> LossOutput:
        """A LossOutput with the mean pair loss."""
        embeddings, labels, ref_embeddings, ref_labels = batch
        x = as_distance_dtype(embeddings)
        y = x if ref_embeddings is None else as_distance_dtype(ref_embeddings)
        if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
            raise ValueError(
                f"expected (B, D) and (R, D) tensors, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if self.metric == "cosine":
            x = torch.nn.functional.normalize(x, dim=1, eps=1e-12)
            y = x if ref_embeddings is None else torch.nn.functional.normalize(y, dim=1, eps=1e-12)
        same_set = ref_embeddings is None
        n_rows, n_refs = x.shape[0], y.shape[0]
        # Within a batch, every pair i < j appears twice (as (i, j) and (j, i)) and the
        # diagonal (an example with itself: genuine at distance 0) costs nothing, so the mean
        # over pairs i < j is the mean over ordered pairs i != j.
        self_pairs = n_rows if same_set else 0
        count = float(n_rows * n_refs - self_pairs)
        scale = 1.0 / max(count, 1.0)
        grad_enabled = torch.is_grad_enabled()
        want_x = grad_enabled and x.requires_grad
        want_y = grad_enabled and not same_set and y.requires_grad
        sums, grad_x, grad_y = _contrastive_blocks(
            x.detach(),
            None if same_set else y.detach(),
            labels,
            labels if ref_labels is None else ref_labels,
            self.metric,
            self.margin,
            self.pos_margin,
            want_x,
            want_y,
            scale,
        )
        value_sum, active, dist_sum, genuine_dist_sum, genuine = sums
        n_genuine = genuine - self_pairs
        stats = {
            "active_fraction": active * scale,
            "mean_pos_dist": genuine_dist_sum / n_genuine.clamp_min(1),
            "mean_neg_dist": (dist_sum - genuine_dist_sum) / (count - n_genuine).clamp_min(1),
            "n_valid": torch.tensor(count / (2 if same_set else 1)),
        }
        if want_x or want_y:
            loss = _PrecomputedGradient.apply(value_sum, scale, x, y, grad_x, grad_y)
        else:
            loss = value_sum * scale
        return LossOutput(loss=loss, stat_tensors=stats)


class _PrecomputedGradient(torch.autograd.Function):
    """`value_sum · scale`, whose gradient with respect to x and y was computed with it
    (exact to first order: no second derivative)."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        value_sum: torch.Tensor,
        scale: float,
        x: torch.Tensor,
        y: torch.Tensor,
        grad_x: torch.Tensor | None,
        grad_y: torch.Tensor | None,
    ) -> torch.Tensor:
        ctx.save_for_backward(grad_x, grad_y)
        return value_sum * scale

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        grad_x, grad_y = ctx.saved_tensors
        return (
            None,
            None,
            None if grad_x is None else grad_x * grad,
            None if grad_y is None else grad_y * grad,
            None,
            None,
        )


def _contrastive_blocks(
    x: torch.Tensor,
    y: torch.Tensor | None,
    labels: torch.Tensor,
    ref_labels: torch.Tensor,
    metric: str,
    margin: float,
    pos_margin: float,
    want_x: bool,
    want_y: bool,
    scale: float = 1.0,
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None, torch.Tensor | None]:
    """Sums of the contrastive terms over every pair of rows of `x` and `y`, with their
    gradient with respect to `x` and `y`, a block of rows at a time, without autograd.

    For a pair at distance d with derivative s = ∂term/∂d, the gradient is s·∂d/∂x_i:
    (x_i − y_j)/d for euclidean (0 at d = 0), 2(x_i − y_j) for squared euclidean, −y_j for
    cosine (on normalised rows). With W_ij = s_ij·(1/d_ij or 2), Σ_j W_ij (x_i − y_j) is
    rowsum(W)_i·x_i − (W y)_i: one product per block. Within one set (`y` None) W is
    symmetric and every pair appears in both orders, so x's gradient is twice its rows' part.

    Speed (CPU): each block's (b, R) tensors are preallocated and reused, so they stay in the
    cache and no allocation touches fresh pages; the distances come from one product of
    augmented rows ([x, ‖x‖², 1]·[−2y, 1, ‖y‖²] = ‖x − y‖², [x, 1]·[−y, 1] = 1 − x·y); the
    labels are compared as small dense float ids into a float tensor (a boolean (b, R)
    tensor costs several times a float one on the CPU).

    Args:
        x: (B, D) rows (detached; normalised for cosine).
        y: (R, D) references (detached; normalised for cosine), or None for `x` itself
            (then the diagonal is excluded: distance exactly 0, genuine).
        labels: (B,); ref_labels: (R,) (`labels` when `y` is None).
        metric, margin, pos_margin: as in `ContrastiveLoss`.
        want_x, want_y: whether to compute the gradient with respect to `x`, `y`.
        scale: the gradients are those of scale · Σ terms (1 / the number of pairs: a mean).
    Returns:
        ((Σ terms, active pairs, Σ d, Σ d over genuine pairs, genuine pairs): 0-d tensors
        over all ordered pairs, the diagonal included when `y` is None), then the (B, D)
        gradient of scale · Σ terms with respect to `x` and the (R, D) one for `y` (None where not
        wanted).
    """
    same_set = y is None
    y = x if y is None else y
    n_rows, n_refs = x.shape[0], y.shape[0]
    euclidean, squared = metric == "euclidean", metric == "sqeuclidean"
    ids, ref_ids = _dense_label_ids(labels, None if same_set else ref_labels, x.dtype)
    ids = ids[:, None]
    ref_ids = (ids if same_set else ref_ids[:, None]).T
    left, right = _augmented_rows(x, y, same_set, cosine=not (euclidean or squared))
    right_t = right.T
    # Hinge argument: d − pos_margin (genuine), margin − d (impostor), i.e.
    # sign·(d − centre) + half with sign = +1 (genuine), −1 (impostor).
    centre, half = (margin + pos_margin) / 2, (margin - pos_margin) / 2
    half_t = torch.tensor(half, dtype=x.dtype, device=x.device)
    minus_one = torch.tensor(-1.0, dtype=x.dtype, device=x.device)
    if x.device.type == "cpu":
        step = max(_CPU_MIN_BLOCK_ROWS, _CPU_BLOCK_ELEMENTS // max(1, n_refs))
    else:
        step = max(1, _DEVICE_BLOCK_ELEMENTS // max(1, n_refs))
    step = min(step, max(1, n_rows))
    dist_buf, sign_buf, hinge_buf, scratch_buf = (x.new_empty(step, n_refs) for _ in range(4))
    grad_x = torch.empty_like(x) if want_x else None
    grad_y = torch.zeros_like(y) if want_y else None
    parts: list[list[torch.Tensor]] = [[], [], [], [], []]
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        xb = x[start:stop]
        d, sign = dist_buf[: stop - start], sign_buf[: stop - start]
        hinge, scratch = hinge_buf[: stop - start], scratch_buf[: stop - start]
        torch.mm(left[start:stop], right_t, out=d).clamp_(min=0.0)
        if same_set:
            d.diagonal(offset=start).fill_(0.0)  # exactly 0, not rounding noise
        if euclidean:
            d.sqrt_()
        torch.eq(ids[start:stop], ref_ids, out=sign)  # 1 genuine, 0 impostor
        flat_d, flat_genuine = d.view(-1), sign.view(-1)
        parts[2].append(flat_d.sum())
        parts[3].append(torch.dot(flat_d, flat_genuine))
        parts[4].append(flat_genuine.sum())
        torch.add(minus_one, sign, alpha=2.0, out=sign)  # +1 genuine, −1 impostor
        torch.sub(d, centre, out=hinge)
        torch.addcmul(half_t, hinge, sign, out=hinge).clamp_(min=0.0)
        flat_hinge = hinge.view(-1)
        parts[0].append(torch.dot(flat_hinge, flat_hinge))
        parts[1].append(torch.sign(hinge, out=scratch).sum())
        if not (want_x or want_y):
            continue
        weight = hinge.mul_(sign)  # ∂term/∂d / 2
        if euclidean:
            weight.div_(d).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)  # 0 where d = 0
        if metric == "cosine":
            if grad_x is not None:
                torch.mm(weight, y, out=grad_x[start:stop]).neg_()
            if grad_y is not None:
                grad_y.addmm_(weight.T, xb, alpha=-1.0)
            continue
        if grad_x is not None:
            rows = weight.sum(dim=1, keepdim=True)
            torch.mm(weight, y, out=grad_x[start:stop])
            grad_x[start:stop].neg_().addcmul_(rows, xb)
        if grad_y is not None:
            grad_y.addmm_(weight.T, xb, alpha=-1.0).addcmul_(weight.sum(dim=0)[:, None], y)
    # Chain factor of ∂term/∂d (2·hinge) times ∂d/∂(x_i − y_j)'s constant (2 for squared).
    factor = 2.0 * (2.0 if squared else 1.0) * scale
    if grad_x is not None:
        grad_x.mul_(factor * (2.0 if same_set else 1.0))
    if grad_y is not None:
        grad_y.mul_(factor)
    value, active, dist_sum, genuine_dist, genuine = (_total(p, x) for p in parts)
    return (value, active, dist_sum, genuine_dist, genuine), grad_x, grad_y


def _total(values: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """The sum of 0-d tensors (0 for none), without a stack for one."""
    if len(values) == 1:
        return values[0]
    return torch.stack(values).sum() if values else like.new_zeros(())


def _dense_label_ids(
    labels: torch.Tensor, ref_labels: torch.Tensor | None, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The labels as dense ids 0, 1, … (equal labels, equal ids) in a floating dtype: exact
    (fewer than 2²⁴ distinct labels in B + R rows) and compared without a boolean tensor.
    One sort, no host synchronisation.

    Args:
        labels: (B,) integer labels; ref_labels: (R,) or None.
    Returns:
        (B,) ids, and (R,) ids of `ref_labels` (None when it is None).
    """
    both = labels if ref_labels is None else torch.cat([labels, ref_labels])
    values, order = both.sort()
    starts = torch.zeros(values.shape, dtype=dtype, device=values.device)
    starts[1:] = (values[1:] != values[:-1]).to(dtype)
    ids = torch.empty_like(starts).scatter_(0, order, starts.cumsum(0))
    if ref_labels is None:
        return ids, None
    return ids[: labels.shape[0]], ids[labels.shape[0] :]


def _augmented_rows(
    x: torch.Tensor, y: torch.Tensor, same_set: bool, cosine: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(left (B, D + k), right (R, D + k)) with left_i · right_j the squared euclidean
    distance ‖x_i‖² + ‖y_j‖² − 2 x_i·y_j (k = 2) or, for `cosine`, 1 − x_i·y_j (k = 1)."""
    ones_x = x.new_ones(x.shape[0], 1)
    ones_y = ones_x if same_set else y.new_ones(y.shape[0], 1)
    if cosine:
        return torch.cat([x, ones_x], dim=1), torch.cat([-y, ones_y], dim=1)
    x_sq = (x * x).sum(dim=1, keepdim=True)
    y_sq = x_sq if same_set else (y * y).sum(dim=1, keepdim=True)
    return torch.cat([x, x_sq, ones_x], dim=1), torch.cat([-2.0 * y, ones_y, y_sq], dim=1)
