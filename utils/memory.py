"""Process memory settings: keep freed memory in the heap so that a training step does not page-fault.

Every training step allocates and frees the same activations and work buffers (megabytes each).
glibc's malloc hands such blocks back to the kernel (``munmap``, heap trimming) and takes them
again on the next step, and each fresh 4 KiB page then costs a page fault (about 4 us on the
development VMs): 1000 to 2300 faults per step of the demo's RAMSF at batch 8, against about 10
with the settings below (``bench/bench_allocator.py``). They are glibc's documented ``mallopt``
tunables; other C libraries (macOS, Windows, musl) are left as they are.
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
"""glibc's ``mallopt`` parameter numbers (malloc.h)."""
KEEP_SETTINGS = {
    M_MMAP_THRESHOLD: 32 << 20,  # blocks below 32 MiB (glibc's largest allowed value) from the heap
    M_TRIM_THRESHOLD: 1 << 30,  # free memory at the heap's top is returned to the kernel only past 1 GiB
    M_TOP_PAD: 64 << 20,  # the heap grows in steps of 64 MiB (address space; pages count once touched)
}


def keep_freed_memory() -> bool:
    """Apply :data:`KEEP_SETTINGS` with glibc's ``mallopt`` (process-wide, for the allocations that
    follow); True where applied, False where the C library is not glibc or refused a setting.
    The process keeps its peak heap instead of shrinking between steps; nothing else changes."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in KEEP_SETTINGS.items())
