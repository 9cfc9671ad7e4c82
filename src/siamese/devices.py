"""Which device a model runs on, and the precision of its forward pass there.

`device: auto|cpu|cuda|cuda:N|mps` in a run config and `--device` on the commands name it;
`resolve_device` turns the name into a `torch.device`, or says plainly why it cannot (no
CUDA in this build or on this machine, no such GPU). `auto` is CUDA when torch sees a GPU,
else the CPU: never MPS, whose lack of float64 the evaluation's exact metrics need (ask for
`mps` by name to train there).

Inputs live in host memory (a uint8 tensor, or files decoded by DataLoader workers) and are
copied to the device a batch at a time: from pinned memory without blocking on CUDA
(`to_device`). Mixed precision (`autocast`) is bfloat16 on the CPU or CUDA, or float16 with
a gradient scaler on CUDA (`grad_scaler`); distances and losses stay float32.
"""

from __future__ import annotations

import contextlib
import os
import re

import torch

from siamese.errors import ConfigError

DEVICE_NAMES = "auto, cpu, cuda, cuda:N (N = 0, 1, …) or mps"
PRECISIONS = ("fp32", "bf16", "fp16")
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_name(name: str, where: str = "--device") -> str:
    """`name` when it is a device name this package knows (whatever this machine has).

    Raises:
        ConfigError: naming `where`, the value and the valid names.
    """
    if not isinstance(name, str) or not _PATTERN.match(name.strip().lower()):
        raise ConfigError(f"{where} = {name!r} is not a device: choose {DEVICE_NAMES}")
    return name.strip().lower()


def resolve_device(
    name: str | torch.device | None = "auto", where: str = "--device"
) -> torch.device:
    """The `torch.device` that `name` means on this machine.

    `auto` (or None) is `cuda` — the GPU of this process's `LOCAL_RANK` under torchrun, else
    GPU 0 — when torch sees one, else `cpu`.

    Raises:
        ConfigError: an unknown name, CUDA or MPS asked for where torch has none, or a GPU
            index beyond the GPUs present; the message says what this machine has.
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = check_device_name("auto" if name is None else name, where)
    if name == "auto":
        return _local_cuda() if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(
                f"{where} = mps, but Apple's Metal (MPS) is not available here (it needs a Mac "
                "with Apple silicon and a torch build with MPS): use cpu or auto"
            )
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ConfigError(f"{where} = {name}, but {cuda_absence()}: use cpu or auto")
    if name == "cuda":
        return _local_cuda()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            f"{where} = {name} under torchrun would put every process on that one GPU: give "
            "cuda or auto (each process then takes the GPU of its LOCAL_RANK), and choose the "
            "GPUs with CUDA_VISIBLE_DEVICES"
        )
    index = int(name.split(":")[1])
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(
            f"{where} = {name}, but this machine has {count} CUDA device(s), numbered 0 to "
            f"{count - 1}"
        )
    return torch.device("cuda", index)


def cuda_absence() -> str:
    """Why torch sees no GPU, in words: a CPU-only build, or no usable GPU or driver."""
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build without CUDA"
    return (
        f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU on this "
        "machine (no GPU, no driver, or CUDA_VISIBLE_DEVICES hides them)"
    )


def _local_cuda() -> torch.device:
    """cuda:LOCAL_RANK under torchrun (one GPU per process), else cuda:0.

    Raises:
        ConfigError: more processes on this machine than GPUs (two would share one, which
            NCCL refuses), unless each process sees exactly one (CUDA_VISIBLE_DEVICES per
            process: then it is cuda:0).
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    count = torch.cuda.device_count()
    if count == 1:
        return torch.device("cuda", 0)
    if local_rank >= count:
        raise ConfigError(
            f"this process has LOCAL_RANK {local_rank}, but the machine shows {count} GPUs: "
            "start at most one process per GPU (torchrun --nproc_per_node)"
        )
    return torch.device("cuda", local_rank)


def describe_device(device: torch.device) -> str:
    """The device in words for logs and reports, e.g. "cuda:0 (NVIDIA H200, 139.8 GiB)"."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{device} ({props.name}, {props.total_memory / 2**30:.1f} GiB)"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def check_precision(precision: str, device: torch.device, where: str = "train.precision") -> None:
    """Refuse a precision the device cannot train in.

    Raises:
        ConfigError: an unknown precision, or fp16 (which needs a gradient scaler and fast
            float16 kernels) on the CPU.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"{where} = {precision!r}: choose {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError(
            f"{where} = fp16 trains on a GPU (CUDA or MPS); on the CPU use bf16 or fp32"
        )


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The forward pass's mixed-precision context: none for fp32, else torch.autocast to
    bfloat16 (bf16) or float16 (fp16) on `device`'s type."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 training (float16 gradients underflow without one); None
    for fp32 and bf16, whose exponent range is float32's."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`x` (host memory) on `device`: on CUDA through pinned memory without blocking the
    host, so that the copy overlaps the work already queued; unchanged on the CPU."""
    if x.device == device:
        return x
    if device.type == "cuda" and x.device.type == "cpu":
        pinned = x if x.is_pinned() else x.pin_memory()
        return pinned.to(device, non_blocking=True)
    return x.to(device)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (cpu for one with neither)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def process_group_backend(device: torch.device) -> str:
    """torch.distributed's backend for `device`: NCCL between GPUs, gloo on the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"
