"""Losses on embeddings. Label convention for pairs: 1 = same class (genuine), 0 = different.

`siamese.losses.catalog` lists every loss a run can train (name, module, options, paper); the
config, the objective builder, `siamese train --help` and the docs read it. The modules are
imported on first use (this package's names resolve lazily), so the catalog can be read
without torch.

A loss takes embeddings as given (normalising them is the model's job, though the cosine
losses normalise for themselves) and returns a `LossOutput`: the scalar loss and statistics
of the step. When nothing is valid (one class in the batch, a batch of one) the loss is 0 and
still connected to the embeddings, never NaN. The pair and triplet losses, over a labelled
batch and an optional reference set, are `LabelledBatchLoss`es (`labelled_batch`): one
`forward` checks the reference set and hands the subclass's `batch_loss` a `LabelledBatch`.

The distance-based losses are sums of functions of single distances (or similarities), so
each computes its value and its derivative with respect to every distance without autograd,
and returns `loss_from_distance_weights`: a scalar equal to the value whose gradient flows
through the distance matrix only. That keeps one (B, R) tensor in the graph instead of a chain
of them (a third of the memory and time at batch 4,096). Gradients are exact to first order;
second derivatives through these losses are not available.

The classification and proxy losses own one learnable weight per training class and take
class indices as labels; they work on a (B, C) cosine matrix (the classification losses
through autograd, the proxy losses with their slopes computed by hand, as above).

May import `distances`, `mining` and `errors` only: losses know nothing of data or training.
"""

from __future__ import annotations

import importlib
from typing import Any

from siamese.losses.catalog import LOSSES

_EXPORTS: dict[str, str] = {
    "LossOutput": "output",
    "loss_from_distance_weights": "output",
    "ClassWeightLoss": "class_weights",
    "TRIPLET_MINING": "triplet",
    "batch_all_triplet_loss": "triplet",
    "reduce_triplets": "triplet",
    "triplet_margin_loss": "triplet",
    "contrastive_loss": "contrastive",
    "CrossBatchMemory": "cross_batch_memory",
    **{entry.target.split(":")[1]: entry.target.split(":")[0] for entry in LOSSES},
}
"""Each public name → the module (under `siamese.losses`) that defines it."""


def loss_class(name: str) -> type:
    """The class of the catalog's loss `name` (its module imported now)."""
    from siamese.losses.catalog import loss_entry

    module, attribute = loss_entry(name).target.split(":")
    return getattr(importlib.import_module(f"siamese.losses.{module}"), attribute)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'siamese.losses' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"siamese.losses.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted([*_EXPORTS, "loss_class"])
