"""Give freed heap memory back to the system, periodically (long-lived
processes), and not after every burst (every process).

The 15-minute soak (``scripts/soak``) showed a relay's RSS end 11% above
its first minute while the memory malloc had in use stayed flat (13.6 ->
13.9 MiB): the growth was freed memory glibc keeps in its arenas after
bursts (a relayed transfer's buffers). ``malloc_trim(0)`` returns it. It
is glibc's; elsewhere (musl, macOS) this does nothing.

The other way round, per transfer (issue 12): by default glibc serves each
allocation over 128 KiB (the receive path's 256 KiB reads, 1 MiB chunks)
with its own ``mmap`` and returns heap tops over 128 KiB at once, so a
transfer maps, faults in and unmaps the same memory thousands of times per
GiB. On a VM that hands freed memory back to its host (this project's CI
machines do, after ~1 s) each such page costs its first touch again.
``keep_freed_heap`` keeps up to 64 MiB of freed heap per arena for reuse
(``M_TRIM_THRESHOLD``) and serves allocations under 32 MiB (the ceiling of
glibc's own dynamic threshold) from the heap (``M_MMAP_THRESHOLD``). A
bulk receiver's main thread went from 1.37 to 1.09 s of CPU per GiB
(``BENCH_STREAM_CPU=1 scripts/bench_stream --mib 1024``, the same values
as ``MALLOC_*_`` variables), and a 1 GiB ``get`` from ~100,000 page faults
to ~35,000. (A 4 MiB threshold was worse than glibc's defaults: 340,000
faults, for buffers of a few MiB mapped and unmapped each time.)
Long-lived processes still trim every minute.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from typing import Any

import trio

logger = logging.getLogger(__name__)

__all__ = ["TRIM_EVERY", "trim_forever", "malloc_trim", "keep_freed_heap"]

#: Seconds between trims: cheap (well under a millisecond on a quiet heap).
TRIM_EVERY = 60.0


def _libc_function(name: str) -> Any:
    """glibc's ``name``, or None (another libc, or none)."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def _find_trim() -> Callable[[int], int] | None:
    fn = _libc_function("malloc_trim")
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    trim: Callable[[int], int] = fn
    return trim


_TRIM = _find_trim()

#: glibc's mallopt parameters (malloc.h) and the values we set.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
KEEP_FREED_BYTES = 64 << 20
HEAP_ALLOCATIONS_BELOW = 32 << 20


def keep_freed_heap() -> bool:
    """Reuse freed heap memory instead of unmapping it after every burst;
    False where there is no glibc ``mallopt`` (nothing changed)."""
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, KEEP_FREED_BYTES)) and bool(
        mallopt(_M_MMAP_THRESHOLD, HEAP_ALLOCATIONS_BELOW)
    )


def malloc_trim() -> bool:
    """Return free heap memory to the system now; False where there is no malloc_trim."""
    if _TRIM is None:
        return False
    return bool(_TRIM(0))


async def trim_forever(every: float = TRIM_EVERY) -> None:
    """Trim every ``every`` seconds until cancelled."""
    if _TRIM is None:
        logger.debug("no malloc_trim here: freed heap memory stays with the process")
        return
    while True:
        await trio.sleep(every)
        malloc_trim()
