"""The collapse alarm: a warning, with advice, when a run's logged rows show that the embedding
has collapsed to a point or the margin loss no longer separates classes."""

from __future__ import annotations

import math
import warnings


class CollapseAlarm:
    """Warns once when the embedding collapses, with advice.

    Two signs, read from a logging row: the embeddings' variance (mean over dimensions of
    the per-dimension variance in the batch) below `1e-4 × norm²/D`, i.e. every input mapped
    to nearly the same point; or a margin loss stuck at the margin with the positive and
    negative distances equal (d_ap ≈ d_an: the network no longer separates classes).

    Args:
        margin: the loss's margin (None when the loss has none, e.g. the pair classifier).
        embedding_dim: D.
    """

    def __init__(self, margin: float | None, embedding_dim: int) -> None:
        self.margin, self.dim = margin, embedding_dim
        self.fired = False

    def check(self, row: dict[str, float]) -> str | None:
        """The warning text if `row` shows a collapse (only the first time), else None."""
        if self.fired:
            return None
        norm, variance = row.get("embedding_norm", math.nan), row.get("embedding_variance", 0.0)
        collapsed = variance < 1e-4 * max(norm * norm, 1e-12) / self.dim
        d_ap, d_an = row.get("mean_pos_dist", math.nan), row.get("mean_neg_dist", math.nan)
        stuck = (
            self.margin is not None
            and self.margin > 0
            and abs(row.get("loss", 0.0) - self.margin) < 0.02 * self.margin
            and abs(d_an - d_ap) < 0.01 * max(self.margin, d_an, 1e-6)
        )
        if not (collapsed or stuck):
            return None
        self.fired = True
        sign = (
            f"embedding variance {variance:.2e} (norm {norm:.3g})"
            if collapsed
            else f"loss {row['loss']:.4f} ≈ margin {self.margin} with d_ap {d_ap:.4f} ≈ d_an {d_an:.4f}"
        )
        message = (
            f"the embedding looks collapsed at step {int(row['step'])}: {sign}. Try a lower "
            "learning rate (optimizer.lr), start with semi-hard mining (loss.mining=semihard) "
            "rather than hard, and check the margin against the distance's range (unit-length "
            "embeddings are at most 2 apart in euclidean distance)."
        )
        warnings.warn(message, UserWarning, stacklevel=2)
        return message
