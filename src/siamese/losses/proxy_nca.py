"""Proxy-NCA loss (Movshovitz-Attias, Toshev, Leung, Ioffe and Singh, "No Fuss Distance Metric
Learning using Proxies", ICCV 2017): one learnable proxy per class, and NCA's softmax over the
negative squared distances from each embedding to every proxy, both L2-normalised:

    ℓ = mean_x −log( exp(−s‖x̂ − p̂_y‖²) / Σ_c exp(−s‖x̂ − p̂_c‖²) )

with s the softmax scale, as PML's `ProxyNCALoss(softmax_scale=s)` (its squared `LpDistance`
on normalised vectors, softmax over all proxies, the own proxy the only positive, the mean).

‖x̂ − p̂_c‖² = ‖x̂‖² + 1 − 2 cos(x, p_c) and ‖x̂‖² is the same for every class, so the softmax
is over 2s·cos: one matrix product. The value and its derivative with respect to each cosine,
2s(softmax − one-hot)/B, are computed without autograd and reach the embeddings and proxies
through `proxy_anchor.cosine_slopes_loss`, as Proxy-Anchor's do: no (B, C, D) tensor, no
distance object, no host synchronisation; first-order gradients only.

Documented differences from PML, both out of reach of training: a proxy of norm below 1e-12
(zero) counts at ‖x̂ − p̂‖² = 2 − 2 cos = 2 here and at 1 in PML; and PML drops from the mean
an example whose probability underflows to exactly 0 (its `non_zero` filter, at large scales),
where the log-softmax here keeps it, with its large but finite loss.
"""

from __future__ import annotations

import torch

from siamese.errors import ConfigError
from siamese.losses.output import LossOutput
from siamese.losses.proxy_anchor import ProxyLoss, cosine_slopes_loss, cosines


class ProxyNCALoss(ProxyLoss):
    """Proxy-NCA, PML's default scale 1; proxies initialised as PML does (standard normal).

    Args:
        num_classes, embedding_dim: as `ProxyLoss`.
        scale: s, the softmax's scale on the negative squared distances (> 0).
    """

    def __init__(self, num_classes: int, embedding_dim: int, scale: float = 1.0) -> None:
        if not scale > 0:
            raise ConfigError(f"proxy_nca scale must be > 0, got {scale}")
        super().__init__(num_classes, embedding_dim, torch.nn.init.normal_)
        self.scale = float(scale)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        """Args:
            embeddings: (B, D); labels: (B,) int64 class indices in [0, num_classes).
        Returns:
            LossOutput with the mean cross-entropy above.
        """
        geometry = cosines(embeddings, self.weight)
        with torch.no_grad():
            value, slopes, cos_own, beaten = proxy_nca_terms(
                geometry.dots, geometry.x_inv, labels, self.scale
            )
            stats = self.proxy_stats(geometry, cos_own, beaten)
        loss = cosine_slopes_loss(embeddings, self.weight, value, slopes, geometry)
        return LossOutput(loss=loss, stat_tensors=stats)


def proxy_nca_terms(
    dots: torch.Tensor, x_inv: torch.Tensor, labels: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Proxy-NCA loss and its derivative, without autograd.

    Args:
        dots: (B, C) x_i·p̂_c, the cosines times ‖x_i‖ (overwritten: it becomes the slopes).
        x_inv: (B, 1) 1/‖x_i‖ (floored as F.normalize floors it).
        labels: (B,) class indices.
    Returns:
        value (0-d, the mean cross-entropy), slopes (B, C) ∂value/∂(x_i·p̂_c), the own
        cosines (B,), and (B,) bool whether another proxy is nearer than the own one.
    """
    own = labels[:, None]
    n_examples = dots.shape[0]
    dots_own = dots.gather(1, own)  # (B, 1)
    top = dots.amax(dim=1, keepdim=True)  # the nearest proxy (x_inv > 0 keeps the order)
    beaten = (top > dots_own).squeeze(1)
    logit_scale = x_inv * (2 * scale)  # the logits 2s·cos, as 2s·x_inv·dots
    # exp(2s(cos − max cos)), in place
    exp = torch.addcmul(-logit_scale * top, dots, logit_scale, out=dots).exp_()
    sums = exp.sum(dim=1, keepdim=True)
    value = (sums.log() + logit_scale * (top - dots_own)).mean()
    # ∂value/∂cos = 2s(softmax − one-hot)/B; per x_i·p̂_c, times x_inv_i
    step = logit_scale / n_examples
    slopes = exp.mul_(step / sums).scatter_add_(1, own, -step)
    return value, slopes, (dots_own * x_inv).squeeze(1), beaten


__all__ = ["ProxyNCALoss", "proxy_nca_terms"]
