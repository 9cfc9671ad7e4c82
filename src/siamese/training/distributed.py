"""Training in several processes (`torchrun --nproc_per_node=N -m siamese train ...`): gloo
between CPU processes, NCCL between GPUs (one per process, the GPU of its LOCAL_RANK).

Each process trains on its shard of the batches (the samplers' `rank`/`world_size`). For P×K
batches the embeddings of all ranks are gathered so that mining sees the global batch, while
the local slice keeps its gradient; each rank's gradient is then its share of the global one,
so the loss is scaled by the world size before the gradients are averaged. Only rank 0
writes checkpoints, metrics and the model.
"""

from __future__ import annotations

import gc
import os
import warnings
import weakref
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from siamese.errors import ConfigError


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place: `rank` in [0, `world_size`)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run directory."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether more than one process trains."""
        return self.world_size > 1


def join_from_environment(backend: str = "gloo") -> ProcessGroup:
    """Join the process group that `torchrun` describes in the environment, or return a
    single-process group when it describes none.

    Args:
        backend: "gloo" between CPU processes, "nccl" between GPUs
            (`siamese.devices.process_group_backend`).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return ProcessGroup()
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={world_size} but {', '.join(missing)} not set: start several processes "
            "with `torchrun --nproc_per_node=N -m siamese train CONFIG`"
        )
    if not dist.is_initialized():
        # torch.distributed.nn.functional's collectives take `group=group.WORLD` as a default
        # argument, evaluated when the module is first imported. torch._dynamo imports it, and
        # torch.optim imports torch._dynamo on the first optimizer: after init_process_group,
        # ten default arguments would hold the world group forever, destroy_process_group
        # could not free it, and gloo's threads (gloo_tcp_loop, pt_gloo_runloop) ran on into
        # the interpreter's teardown, which now and then killed a finished rank with
        # "terminate called without an active exception". Imported first, they hold None.
        import torch.distributed.nn.functional  # noqa: F401

        # Rank 0 validates, calibrates and saves alone while the others wait in a collective:
        # longer than NCCL's default 10 minutes on a large validation set.
        seconds = int(os.environ.get("SIAMESE_DIST_TIMEOUT", str(2 * 3600)))
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=seconds))
    return ProcessGroup(rank=dist.get_rank(), world_size=dist.get_world_size())


def leave(group: ProcessGroup) -> None:
    """Leave the process group (after the last collective call), all ranks together: rank 0
    may still be saving the model and calibrating its thresholds, and a rank that tears the
    group down alone while another is still in it can abort the whole job."""
    if group.distributed and dist.is_initialized():
        dist.barrier()
        world = weakref.ref(dist.group.WORLD)
        dist.destroy_process_group()
        gc.collect()
        if world() is not None:
            # Its native threads outlive it and race the interpreter's teardown at exit.
            warnings.warn(
                "the process group is still referenced after destroy_process_group (by "
                "something imported after init_process_group that keeps `group.WORLD`): its "
                "threads stay alive until exit, where they can abort this process",
                RuntimeWarning,
                stacklevel=2,
            )


def gather_keeping_gradient(local: torch.Tensor) -> torch.Tensor:
    """(B, ...) on every rank → (world_size·B, ...) in rank order; this rank's slice is
    `local` itself (gradient flows through it), the others are copies without gradient.
    Every rank must pass the same shape."""
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, local.detach().contiguous())
    parts[dist.get_rank()] = local
    return torch.cat(parts)


def average_gradients(parameters: list[torch.nn.Parameter], world_size: int) -> None:
    """All-reduce the gradients as one flat buffer and divide by the world size (a parameter
    without a gradient on this rank counts as zero, so every rank sends the same layout)."""
    for p in parameters:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in parameters])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for p in parameters:
        p.grad.copy_(flat[offset : offset + p.numel()].view_as(p))
        offset += p.numel()


def average_buffers(module: torch.nn.Module, world_size: int) -> None:
    """Average floating-point buffers (batch-norm running statistics) across ranks, so the
    model rank 0 saves reflects every shard."""
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer /= world_size


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)
