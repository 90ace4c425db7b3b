"""Garbage collection while a command starts up.

Starting a command imports py-libp2p, trio, cryptography and our own modules:
~75,000 objects that live as long as the process. With the default
thresholds the collector ran ~185 times over them while they were built
(15 times in generation 1, once in full): 0.04-0.05 s of CPU in every
``get``, a tenth of its start-up (measured with ``gc.callbacks``; 1 KB and
1 GiB ``get`` alike). It frees nothing that matters: imports make modules,
classes and functions, which stay. A higher generation-0 threshold is not
enough: five collections of 100,000 young objects still cost 0.027 s.

So the command line calls :func:`pause` before its imports: no collection
while starting. Once its host is listening (in ``Node.__aenter__`` and in
the relay's start, before anything waits on the network) :func:`settle`
moves everything alive into the permanent generation (``gc.freeze``: later
collections no longer walk the start-up objects) and turns the collector
back on. Every command that outlives its start-up opens a host; the others
(``--help``, ``code show``, bad input) end within it. Both do nothing
unless the command line paused, so ``main`` called in-process keeps the
collector as it was.
"""

from __future__ import annotations

import gc

__all__ = ["pause", "settle", "is_paused"]

_paused = False


def pause() -> None:
    """No collection until :func:`settle` (called by the command line, first)."""
    global _paused
    if not _paused and gc.isenabled():
        _paused = True
        gc.disable()


def settle() -> None:
    """Start-up is over: freeze what it built and collect as usual again.
    A no-op unless :func:`pause` turned the collector off, and after the
    first call."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


def is_paused() -> bool:
    return _paused
