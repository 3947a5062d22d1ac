"""Freed host memory kept for reuse by the CPU training loop (glibc malloc thresholds).

Every CPU step allocates and frees the same large tensors (the weight gradients K x out x in,
the activity of the batch). glibc's malloc serves a block above its mmap threshold with fresh
pages from the kernel and gives a freed block back at once, and returns the free top of its
heap to the kernel once it exceeds the trim threshold; either way the next step's block is new
memory that the kernel must map and zero again, one page fault per 4 KiB page (hundreds per
step at width 512). Raising both thresholds (`mallopt(M_MMAP_THRESHOLD)`,
`mallopt(M_TRIM_THRESHOLD)`, glibc's malloc(3) and mallopt(3)) makes malloc reuse the freed
blocks instead: the steps stop faulting, at the price that up to `TRIM_BYTES` of freed memory
stays with the process. Measured in BENCHMARKS.md ("Host memory reuse").

Applied once per process by `keep_freed_memory`, which the trainer calls for CPU runs; a no-op
where the C library is not glibc. `LRSIM_KEEP_FREED_MEMORY=0` in the environment leaves
malloc's defaults alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 1 << 30  # blocks up to 1 GiB come from the heap, reused after they are freed
TRIM_BYTES = 1 << 30  # up to 1 GiB of free heap top is kept rather than given back

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; whether they are raised."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get("LRSIM_KEEP_FREED_MEMORY", "1") == "0":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                         TRIM_BYTES))
