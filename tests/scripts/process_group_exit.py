"""Join the process group as `siamese train` does, do what training does after joining (an
optimizer: torch.optim imports torch._dynamo; collectives), leave, and write what is still
running to OUT/rank{r}.json: the native threads of this process by name, and the warnings
that `leave` gave (started by torchrun; argv[1] is OUT)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import torch
import torch.distributed as dist

from siamese.training.distributed import join_from_environment, leave


def native_threads() -> list[str]:
    """The names of this process's threads (Linux)."""
    return [(task / "comm").read_text().strip() for task in Path("/proc/self/task").iterdir()]


if __name__ == "__main__":
    out = Path(sys.argv[1])
    group = join_from_environment("gloo")
    torch.optim.Adam([torch.nn.Parameter(torch.ones(3))])  # imports torch._dynamo
    total = torch.ones(4)
    dist.all_reduce(total)
    states: list[object] = [None] * group.world_size
    dist.all_gather_object(states, {"rank": group.rank})
    while_joined = native_threads()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        leave(group)
    record = {
        "sum": total.tolist(),
        "threads_while_joined": while_joined,
        "threads_after_leave": native_threads(),
        "warnings": [str(w.message) for w in caught],
    }
    (out / f"rank{group.rank}.json").write_text(json.dumps(record))
