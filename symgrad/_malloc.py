"""Keep freed memory for the next large array (glibc's malloc on Linux).

By default glibc hands every array above 128 KiB to ``mmap`` and gives freed memory back to
the system as soon as the top of the heap holds twice the largest freed block (its
"dynamic threshold"). A compiled function that allocates a few large arrays per call
(its result and some intermediates) then gets fresh pages from the kernel on every call:
a page fault per 4 KiB page, which costs more than the arithmetic (the Rosenbrock
Hessian-vector product on 100,000 elements: 0.64 ms a call instead of 0.16 ms).

:func:`tune` raises both thresholds once per process, when the first function is compiled:
arrays up to 32 MiB come from the heap and up to 256 MiB of freed heap stays mapped for
the next call, as JAX's and PyTorch's caching allocators keep theirs. Set
``config.tune_malloc = False`` (or the environment variable ``SYMGRAD_TUNE_MALLOC=0``)
before compiling to leave malloc as it is; other C libraries than glibc are left alone.
"""

from __future__ import annotations

import sys

from symgrad.config import config

__all__ = ["tune", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 256 << 20

_done = False


def tune() -> bool:
    """Raise glibc's mmap and trim thresholds (once); True when they were set."""
    global _done
    if _done:
        return False
    if not config.tune_malloc:
        return False
    _done = True
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl has no such function)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
