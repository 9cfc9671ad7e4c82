"""One training step's loss and gradients in a process group (started by torchrun).

Every rank builds the same model, takes its slice of a fixed global batch of digits, gathers
the embeddings (keeping its own slice's gradient), computes the loss (argv[2]: a catalog
loss name, `NAME+memory` for it with a cross-batch memory) on the global batch, scales it by
the world size, reduces the gradients as the training loop does and takes one SGD step. Rank
r saves its loss, gradients and the loss's parameters after the step to OUT/rank{r}.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from siamese.config import LossConfig
from siamese.data.sources import load_dataset
from siamese.models.embedding import build_embedding_net
from siamese.training.distributed import gather_keeping_gradient, join_from_environment, leave
from siamese.training.loop import TrainingLoop
from siamese.training.objectives import Objective

SPEC = {"encoder": "mlp", "encoder_options": {"hidden": [32]}, "embedding_dim": 8}


def global_batch() -> torch.Tensor:
    """32 indices: 8 classes × 4 digits."""
    data = load_dataset("digits")
    return torch.cat([(data.y == c).nonzero().squeeze(1)[:4] for c in range(8)])


def loss_config(loss_name: str) -> LossConfig:
    name, _, memory = loss_name.partition("+")
    return LossConfig(name=name, memory=64 if memory else None)


def main(out: Path, loss_name: str) -> None:
    group = join_from_environment()
    torch.manual_seed(0)
    data = load_dataset("digits")
    model = build_embedding_net(SPEC, tuple(data.x.shape[1:]))
    objective = Objective.from_config("pk", loss_config(loss_name), 8, train_labels=data.y)
    index = global_batch().chunk(group.world_size)[group.rank]
    out_step = objective.step(lambda i: model(data.x[i]), data.y, (index,), gather_keeping_gradient)
    optimizer = torch.optim.SGD([*model.parameters(), *objective.parameters()], lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loop = TrainingLoop(model, objective, data, [[0]], optimizer, schedule, 1, group=group)
    (out_step.loss * group.world_size).backward()
    loop.reduce_gradients()
    grads = [p.grad.clone() for p in model.parameters()]
    objective_grads = [p.grad.clone() for p in objective.parameters()]
    optimizer.step()
    torch.save(
        {
            "loss": out_step.loss.detach(),
            "grads": grads,
            "objective_grads": objective_grads,
            "objective_after": [p.detach().clone() for p in objective.parameters()],
        },
        out / f"rank{group.rank}.pt",
    )
    leave(group)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
