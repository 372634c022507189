"""Process settings that training speed depends on: call `keep_freed_memory` once at start-up.

Why: a training step allocates and frees many arrays of 0.1-10 MB. By default glibc's malloc
serves such sizes with fresh ``mmap`` calls and hands freed memory straight back to the kernel,
so every step faults the same pages in again; in threads the faults also queue on the process's
memory lock. Measured on the CIFAR-style step of ``bench/engine.py`` in a process of its own:
78 -> 65 ms on one thread, 52 -> 43 ms as two shard threads. (Inside ``python -m bench engine``
PyTorch's own large frees had already raised malloc's thresholds, so the figures there hardly move.)
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for this setting on 64-bit systems
TRIM_THRESHOLD = 256 << 20  # freed memory kept for reuse before any is returned to the kernel

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks up to `MMAP_THRESHOLD` (up to `TRIM_THRESHOLD` in all)
    for reuse. Returns whether the settings took; False on other C libraries (nothing changes)."""
    global _applied
    if _applied is None:
        _applied = False
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            mallopt = libc.mallopt if libc is not None else None
        except (OSError, AttributeError):
            mallopt = None
        if mallopt is not None:
            mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
            _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
