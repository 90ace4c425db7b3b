"""Give freed heap memory back to the system, periodically (long-lived processes).

The 15-minute soak (``scripts/soak``) showed a relay's RSS end 11% above
its first minute while the memory malloc had in use stayed flat (13.6 ->
13.9 MiB): the growth was freed memory glibc keeps in its arenas after
bursts (a relayed transfer's buffers). ``malloc_trim(0)`` returns it. It
is glibc's; elsewhere (musl, macOS) this does nothing.

"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

import trio

logger = logging.getLogger(__name__)

__all__ = ["TRIM_EVERY", "trim_forever", "malloc_trim"]

#: Seconds between trims: cheap (well under a millisecond on a quiet heap).
TRIM_EVERY = 60.0


def _find_trim() -> Callable[[int], int] | None:
    # The process's own symbols, where libc already is: ``find_library("c")``
    # ran ``ldconfig -p`` (a child process, ~6 ms) at every command's start.
    try:
        fn = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


_TRIM = _find_trim()


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
