"""Proxy-Anchor loss (Kim, Kim, Cho and Kwak, "Proxy Anchor Loss for Deep Metric Learning",
CVPR 2020): one learnable proxy per class, each proxy an anchor against the whole batch.

With s(x, p) the cosine between an embedding and a proxy, P the proxies, P⁺ those with at
least one positive in the batch, X_p⁺ the batch's examples of p's class and X_p⁻ the others:

    ℓ = 1/|P⁺| Σ_{p∈P⁺} log(1 + Σ_{x∈X_p⁺} exp(−α(s(x, p) − δ)))
      + 1/|P|  Σ_{p∈P}  log(1 + Σ_{x∈X_p⁻} exp( α(s(x, p) + δ)))

which is PML's `ProxyAnchorLoss` with its default reducer (the first sum over the proxies with
positives, the second over all C; a proxy without negatives adds 0).

Like the pair losses, the value and its derivative with respect to every cosine are computed
without autograd, on one (B, C) matrix: the positive sums need only each example's own cosine
(B values, gathered into their classes); the negative sums are column log-sum-exps of the
matrix with the own entries masked, each shifted by its column's maximum floored at 0 (the
"1 +"), so nothing overflows and an empty column is exactly log 1 = 0 with a zero slope. The
gradient then reaches the embeddings and the proxies through the normalisation by hand
(`cosine_slopes_loss`): three matrix products in all, no (B, C) tensor kept but the slopes,
no (B, C, D) tensor, no host synchronisation. Gradients are exact to first order; second
derivatives are not available.

`ProxyLoss`, `cosines` and `cosine_slopes_loss` are what both proxy losses share
(`proxy_nca.ProxyNCALoss` is the other).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch.autograd.function import once_differentiable

from siamese.errors import ConfigError
from siamese.losses.output import LossOutput

NORM_EPS = 1e-12
"""A row's norm is floored here before dividing (F.normalize's eps: a zero row stays zero)."""


class Cosines(NamedTuple):
    """The products of the raw embeddings with the unit proxies, and what the cosines'
    derivatives need; all without gradient.

    dots: (B, C) x_i·p̂_c; the cosine is dots_ic · x_inv_i. (Its layout is transposed: it is
    computed as (p̂ xᵀ)ᵀ, the faster product when C is small.)
    x: (B, D) the raw embeddings. x_inv: (B, 1) 1 / max(‖x‖, eps). x_tangent: (B, 1) x_inv²
    where ‖x‖ >= eps, else 0 (below eps a row is divided by the constant eps, so its
    derivative keeps the radial part). p: (C, D) the unit proxies. p_inv: (C, 1) and
    p_radial: (C, 1), 1 where ‖p‖ >= eps, else 0.
    """

    dots: torch.Tensor
    x: torch.Tensor
    x_inv: torch.Tensor
    x_tangent: torch.Tensor
    p: torch.Tensor
    p_inv: torch.Tensor
    p_radial: torch.Tensor


def _inverse_norms(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1) 1 / max(‖row‖, eps) and (N, 1) 1 where ‖row‖ >= eps, else 0."""
    norm = torch.linalg.vector_norm(rows, dim=1, keepdim=True)
    return norm.clamp_min(NORM_EPS).reciprocal_(), (norm >= NORM_EPS).to(rows.dtype)


def cosines(embeddings: torch.Tensor, weight: torch.Tensor) -> Cosines:
    """`Cosines` of `embeddings` (B, D) with the rows of `weight` (C, D), normalised as
    F.normalize does, in the embeddings' dtype, without autograd."""
    with torch.no_grad():
        x = embeddings.detach()
        w = weight.detach().to(x.dtype)
        x_inv, x_radial = _inverse_norms(x)
        p_inv, p_radial = _inverse_norms(w)
        p = w * p_inv
        dots = torch.mm(p, x.T).T  # (p̂ xᵀ)ᵀ: up to 2× faster than x p̂ᵀ for small C
        return Cosines(dots, x, x_inv, x_inv.square().mul_(x_radial), p, p_inv, p_radial)


class _CosineSlopes(torch.autograd.Function):
    """A scalar `value` whose gradient is Σ_ic slopes_ic ∂(x_i·p̂_c)/∂· through the cosine."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        embeddings: torch.Tensor,
        weight: torch.Tensor,
        value: torch.Tensor,
        slopes: torch.Tensor,
        geometry: Cosines,
    ) -> torch.Tensor:
        g = geometry
        ctx.save_for_backward(slopes, g.x, g.x_tangent, g.p, g.p_inv, g.p_radial)
        ctx.dtypes = embeddings.dtype, weight.dtype
        return value.detach().clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        slopes, x, x_tangent, p, p_inv, p_radial = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            # cos_ic = (x_i·p̂_c)/‖x_i‖: with h = slopes p̂ (already divided by ‖x_i‖),
            # ∂/∂x_i = h_i − x_i (x_i·h_i)/‖x_i‖²
            grad_x = slopes @ (p * grad_output)
            along = torch.linalg.vecdot(x, grad_x).unsqueeze_(1).mul_(x_tangent)
            grad_x = grad_x.addcmul_(x, along, value=-1).to(ctx.dtypes[0])
        if ctx.needs_input_grad[1]:
            # ∂/∂p̂_c = Σ_i slopes_ic x_i, then through p̂ = w/‖w‖: (g − p̂ (p̂·g))/‖w‖
            grad_p = slopes.T @ x
            along = torch.linalg.vecdot(p, grad_p).unsqueeze_(1).mul_(p_radial)
            grad_p = grad_p.addcmul_(p, along, value=-1).mul_(p_inv * grad_output)
            grad_w = grad_p.to(ctx.dtypes[1])
        return grad_x, grad_w, None, None, None


def cosine_slopes_loss(
    embeddings: torch.Tensor,
    weight: torch.Tensor,
    value: torch.Tensor,
    slopes: torch.Tensor,
    geometry: Cosines,
) -> torch.Tensor:
    """A scalar equal to `value` whose gradient flows to `embeddings` and `weight` as if the
    loss had been computed by autograd from their cosine matrix (first order only).

    Args:
        embeddings: (B, D) and weight: (C, D), the raw tensors (with gradient).
        value: 0-d, the loss, computed without gradient.
        slopes: (B, C) the loss's derivative with respect to each cosine, divided by the
            embedding's norm (∂loss/∂cos_ic · x_inv_i: the derivative w.r.t. x_i·p̂_c).
        geometry: `cosines(embeddings, weight)`.
    """
    return _CosineSlopes.apply(embeddings, weight, value, slopes, geometry)


class ProxyLoss(torch.nn.Module):
    """A loss with one learnable proxy per class: `weight` (C, D), the loss's own parameter
    (trained with the model, saved in checkpoints, never part of the exported encoder).

    Labels are class indices in [0, num_classes); they are not checked (no host sync).

    Args:
        num_classes: C. embedding_dim: D.
        init: initialises `weight` in place.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        init: Callable[[torch.Tensor], object],
    ) -> None:
        super().__init__()
        if num_classes < 1 or embedding_dim < 1:
            raise ConfigError(
                f"a proxy loss needs num_classes and embedding_dim >= 1, got {num_classes}, "
                f"{embedding_dim}"
            )
        self.num_classes, self.embedding_dim = int(num_classes), int(embedding_dim)
        self.weight = torch.nn.Parameter(torch.empty(self.num_classes, self.embedding_dim))
        init(self.weight.data)

    def proxy_stats(
        self, geometry: Cosines, cos_own: torch.Tensor, beaten: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The step's statistics, detached, without a host synchronisation.

        Args:
            geometry: the step's `Cosines`. cos_own: (B,) each embedding's cosine to its own
            proxy. beaten: (B,) bool, another proxy is nearer than the own one.
        Returns:
            active_fraction: the share of embeddings whose own proxy is not the nearest (ties
            count as nearest); mean_pos_dist: the mean cosine distance 1 − s to the own proxy;
            mean_neg_dist: to the other proxies (0 when C = 1); n_valid: B.
        """
        with torch.no_grad():
            g = geometry
            # Σ_c s(x, p_c) = x̂·Σ_c p̂_c: B·D work, not B·C
            cos_sum = torch.mv(g.x, g.p.sum(dim=0)).mul_(g.x_inv.squeeze(1))
            mean_neg = 1 - (cos_sum - cos_own).mean() / max(self.num_classes - 1, 1)
            return {
                "active_fraction": beaten.to(cos_own.dtype).mean(),
                "mean_pos_dist": 1 - cos_own.mean(),
                "mean_neg_dist": mean_neg if self.num_classes > 1 else cos_own.new_zeros(()),
                "n_valid": torch.full((), float(cos_own.shape[0]), device=cos_own.device),
            }


def kaiming_normal_fan_out(weight: torch.Tensor) -> torch.Tensor:
    """He-normal initialisation with the fan of the first axis (C): PML's proxy initialiser."""
    return torch.nn.init.kaiming_normal_(weight, mode="fan_out")


class ProxyAnchorLoss(ProxyLoss):
    """Proxy-Anchor, PML's defaults: margin δ 0.1, scale α 32; proxies initialised as PML does
    (He-normal, fan-out).

    Args:
        num_classes, embedding_dim: as `ProxyLoss`.
        margin: δ, the cosine margin (>= 0).
        alpha: α, the scale (> 0).
    """

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        margin: float = 0.1,
        alpha: float = 32.0,
    ) -> None:
        if not margin >= 0:
            raise ConfigError(f"proxy_anchor margin must be >= 0, got {margin}")
        if not alpha > 0:
            raise ConfigError(f"proxy_anchor alpha must be > 0, got {alpha}")
        super().__init__(num_classes, embedding_dim, kaiming_normal_fan_out)
        self.margin, self.alpha = float(margin), float(alpha)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        """Args:
            embeddings: (B, D); labels: (B,) int64 class indices in [0, num_classes).
        Returns:
            LossOutput with the loss above.
        """
        geometry = cosines(embeddings, self.weight)
        with torch.no_grad():
            value, slopes, cos_own, beaten = proxy_anchor_terms(
                geometry.dots.mul_(geometry.x_inv),
                labels,
                self.num_classes,
                self.margin,
                self.alpha,
            )
            slopes.mul_(geometry.x_inv)  # per x_i·p̂_c, as cosine_slopes_loss takes them
            stats = self.proxy_stats(geometry, cos_own, beaten)
        loss = cosine_slopes_loss(embeddings, self.weight, value, slopes, geometry)
        return LossOutput(loss=loss, stat_tensors=stats)


def proxy_anchor_terms(
    cos: torch.Tensor, labels: torch.Tensor, num_classes: int, margin: float, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Proxy-Anchor loss from the cosine matrix, and its derivative, without autograd.

    Args:
        cos: (B, C) cosines (overwritten: it becomes the slopes).
        labels: (B,) class indices.
    Returns:
        value (0-d), slopes (B, C) ∂value/∂cos, the own cosines (B,), and (B,) bool whether
        another proxy is nearer than the own one.
    """
    own = labels[:, None]
    cos_own = cos.gather(1, own).squeeze(1)
    beaten = cos.amax(dim=1) > cos_own
    # positives, per class c: log(1 + Σ_{y_i = c} exp(z_i)), z = α(δ − s_own), shifted by
    # max(0, the class's largest z) (the "1" is exp(0))
    z = torch.add(cos_own, -margin).mul_(-alpha)
    shift = z.new_zeros(num_classes).scatter_reduce_(0, labels, z, "amax", include_self=True)
    exp_z = z.sub_(shift[labels]).exp_()
    sums = shift.neg().exp_().index_add_(0, labels, exp_z)
    present = torch.zeros(num_classes, dtype=cos.dtype, device=cos.device)
    n_present = present.index_fill_(0, labels, 1.0).sum()  # >= 1 (a batch is not empty)
    value = sums.log().add_(shift).sum() / n_present
    own_slope = exp_z.div_(sums[labels]).mul_(-alpha / n_present)
    # negatives, per class c: log(1 + Σ_{y_i ≠ c} exp(α(s_ic + δ))), the own entries masked
    masked = cos.scatter_(1, own, float("-inf"))
    shift = masked.amax(dim=0).add_(margin).mul_(alpha).clamp_min_(0)
    exp_a = torch.add(alpha * margin - shift, masked, alpha=alpha, out=masked).exp_()
    sums = exp_a.sum(dim=0).add_(shift.neg().exp_())
    value = value + sums.log().add_(shift).sum() / num_classes
    slopes = exp_a.mul_(sums.reciprocal_().mul_(alpha / num_classes))
    return value, slopes.scatter_(1, own, own_slope[:, None]), cos_own, beaten


__all__ = [
    "NORM_EPS",
    "Cosines",
    "ProxyAnchorLoss",
    "ProxyLoss",
    "cosine_slopes_loss",
    "cosines",
    "kaiming_normal_fan_out",
    "proxy_anchor_terms",
]
