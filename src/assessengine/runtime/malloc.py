"""Keep freed memory in the process (glibc malloc), for processes that score batch after batch.

    from assessengine.runtime.malloc import keep_freed_memory
    keep_freed_memory()      # once, early in a worker process; True where it took effect

Scoring a stream of batches allocates and frees arrays of a few MiB per batch (the reader's
columns, the kernel's per-batch work). With glibc's defaults, and much more with the setting
Dask gives its worker processes (``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes the mmap
threshold at 128 KiB), each of those arrays is mapped and unmapped, or the heap's top trimmed,
at every batch, so the next batch touches fresh pages: one page fault per 4 KiB, which cost
about 6 microseconds each on the 2-vCPU VM the benchmarks run on. Measured there (2.47 M
events, 25 archive files, CPU time of `rescore.score_partition` over all of them): 87,000 page
faults and 0.78-0.81 s with Dask's setting, 3,200-3,900 faults and 0.50-0.62 s after
`keep_freed_memory`.

The contract: after the first call, an allocation below `MMAP_THRESHOLD` comes from the heap
and a freed block goes back to it; the heap's top is returned to the system only past
`TRIM_THRESHOLD` free bytes. So the process keeps up to `TRIM_THRESHOLD` of freed memory (its
resident size stays near its peak, up to that much), which is the price. Later calls do
nothing. Without glibc (musl, macOS, Windows) it does nothing and returns False.
"""

from __future__ import annotations

import ctypes
from typing import Final

MMAP_THRESHOLD: Final = 32 << 20
"""Bytes from which an allocation is its own mapping (glibc's largest dynamic threshold)."""
TRIM_THRESHOLD: Final = 128 << 20
"""Free bytes at the heap's top kept before the heap is trimmed."""
_M_TRIM_THRESHOLD: Final = -1  # glibc malloc.h
_M_MMAP_THRESHOLD: Final = -3

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """See the module docstring. True when glibc took both settings (now or earlier)."""
    global _applied  # noqa: PLW0603 - once per process, by design
    if _applied is None:
        _applied = _mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and _mallopt(
            _M_TRIM_THRESHOLD, TRIM_THRESHOLD
        )
    return _applied


def _mallopt(param: int, value: int) -> bool:
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library to load, or not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(param, value))
