"""A description of the machine and software a benchmark ran on, for its results file."""

from __future__ import annotations

import os
import platform
from typing import Any


def describe_machine() -> dict[str, Any]:
    """CPU model and vector extensions, cores, memory, OS, Python and torch versions (the CPU
    and memory as `siamese info` reads them)."""
    import torch

    from siamese.cli.info import cpu_report, memory_total_bytes

    cpu = cpu_report()
    memory = memory_total_bytes()
    return {
        "cpu": cpu.get("model") or platform.processor() or platform.machine(),
        # which oneDNN/ATen kernels ran: the same code differs (and crashed) between CPU families
        "vector_extensions": cpu.get("vector_extensions"),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 1024**3, 1) if memory is not None else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
