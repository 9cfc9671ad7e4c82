"""glibc allocator settings that make CPU training faster.

By default glibc serves large blocks (the activation buffers of a training step) with fresh
`mmap` calls and returns them on `free`, so every step page-faults its buffers in again.
Keeping them in the heap (no mmap for large blocks, no trimming) avoids that: on a 2-core CPU
it made the quick start's training 1.30× faster (benchmarks/results/demo.json). This is what the environment variables
`MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...` do, applied at run time with `mallopt`.

Only the `siamese` command calls this; importing the library changes nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD_BYTES = 16 * 1024**3


def keep_large_allocations_in_heap() -> bool:
    """Apply the settings on glibc (Linux) unless `SIAMESE_MALLOC_TUNING=0`; return whether
    they were applied. Settings the user already gave through the environment win."""
    if os.environ.get("SIAMESE_MALLOC_TUNING", "1") == "0" or platform.system() != "Linux":
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = True
    if "MALLOC_MMAP_MAX_" not in os.environ:
        applied &= mallopt(_M_MMAP_MAX, 0) == 1
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        # mallopt takes an int: the largest value it can hold is as good as "never trim".
        applied &= mallopt(_M_TRIM_THRESHOLD, min(_TRIM_THRESHOLD_BYTES, 2**31 - 1)) == 1
    return bool(applied)
