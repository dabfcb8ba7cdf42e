"""The C heap kept for reuse across evaluations (glibc only; elsewhere nothing happens).

Why: every VGG-19 pass allocates and frees activations of tens of megabytes. glibc hands
blocks that large to the kernel with mmap and gives them back on free, so each evaluation
faulted its pages in again; measured on the 2-core CPU, a fresh process's passes ran 10 %
slower than a settled one's (its measurement of the device with them: a 256 px bf16 pass 0.33 s
against 0.29-0.32 s with the heap kept) and a settled one spent 0.08 s of system time per
512x384 evaluation. Blocks up to MMAP_THRESHOLD now come from the heap, and up to
TRIM_THRESHOLD of freed heap stays mapped: the process keeps about its largest job's
working memory while it lives (the daemon exits when idle).
"""

from __future__ import annotations

import ctypes
import functools
import sys

#: Blocks below this come from the heap (glibc's default grows to at most 32 MiB).
MMAP_THRESHOLD = 1 << 30
#: Freed memory at the heap's top kept mapped, up to this.
TRIM_THRESHOLD = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's thresholds once per process; False where there is no glibc. The C library
    is the process's own (dlopen of no file), so nothing is searched for."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
