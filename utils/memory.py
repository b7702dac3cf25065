"""Process memory settings: transparent huge pages for large CPU tensors, and freed memory kept in
the heap so that a training step does not page-fault.

:func:`use_huge_pages` (called when :mod:`engine` is imported) turns on PyTorch's transparent huge
pages for its CPU allocations (``THP_MEM_ALLOC_ENABLE``, read at the first large allocation):
large tensors allocate faster. :func:`keep_freed_memory` (called first by the entry scripts): every
training step allocates and frees the same activations and work buffers (megabytes each); glibc's
malloc hands such blocks back to the kernel (``munmap``, heap trimming) and takes them
again on the next step, and each fresh 4 KiB page then costs a page fault (about 4 us on the
development VMs): 1000 to 2300 faults per step of the demo's RAMSF at batch 8, against about 20
with the settings below (``bench/bench_allocator.py``). They are glibc's documented ``mallopt``
tunables; other C libraries (macOS, Windows, musl) are left as they are. Blocks of 32 MiB or more
are still mapped and unmapped each time.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
"""glibc's ``mallopt`` parameter numbers (malloc.h)."""
KEEP_SETTINGS = {
    M_MMAP_THRESHOLD: 32 << 20,  # blocks below 32 MiB from the heap (older glibc accepts no more)
    M_TRIM_THRESHOLD: 1 << 30,  # free memory at the heap's top is returned to the kernel only past 1 GiB
    M_TOP_PAD: 64 << 20,  # the heap grows in steps of 64 MiB (address space; pages count once touched)
}


def use_huge_pages() -> None:
    """Ask PyTorch for transparent huge pages on large CPU allocations, unless the environment
    already says otherwise (``THP_MEM_ALLOC_ENABLE``, read at the first large allocation)."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def is_glibc() -> bool:
    """Whether this process runs on GNU libc (the C library whose ``mallopt`` is set here)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr (Windows) or no such name
        return False


def keep_freed_memory() -> bool:
    """Apply every :data:`KEEP_SETTINGS` with glibc's ``mallopt`` (process-wide, for the
    allocations that follow); True where all were applied, False where the C library is not
    glibc or refused one. Results are unchanged; the resident memory stays at its peak instead of
    shrinking between steps (at most 1 GiB of free heap is kept)."""
    if not is_glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    applied = [mallopt(param, value) == 1 for param, value in KEEP_SETTINGS.items()]
    return all(applied)
