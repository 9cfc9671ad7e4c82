"""One training step's loss and gradients in a process group (started by torchrun).

Every rank builds the same model, takes its slice of a fixed global batch of digits, gathers
the embeddings (keeping its own slice's gradient), computes the mined triplet loss on the
global batch, scales it by the world size, and averages the gradients. Rank r saves its
loss and gradients to OUT/rank{r}.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from siamese.config import LossConfig
from siamese.data.sources import load_dataset
from siamese.distributed import (
    average_gradients,
    gather_keeping_gradient,
    join_from_environment,
    leave,
)
from siamese.models.embedding import build_embedding_net
from siamese.objectives import Objective

SPEC = {"encoder": "mlp", "encoder_options": {"hidden": [32]}, "embedding_dim": 8}


def global_batch() -> torch.Tensor:
    """32 indices: 8 classes × 4 digits."""
    data = load_dataset("digits")
    return torch.cat([(data.y == c).nonzero().squeeze(1)[:4] for c in range(8)])


def main(out: Path) -> None:
    group = join_from_environment()
    torch.manual_seed(0)
    data = load_dataset("digits")
    model = build_embedding_net(SPEC, tuple(data.x.shape[1:]))
    objective = Objective.from_config("pk", LossConfig(mining="semihard"), 8)
    index = global_batch().chunk(group.world_size)[group.rank]
    out_step = objective.step(lambda i: model(data.x[i]), data.y, (index,), gather_keeping_gradient)
    (out_step.loss * group.world_size).backward()
    parameters = list(model.parameters())
    average_gradients(parameters, group.world_size)
    torch.save(
        {"loss": out_step.loss.detach(), "grads": [p.grad for p in parameters]},
        out / f"rank{group.rank}.pt",
    )
    leave(group)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
