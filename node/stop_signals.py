"""The Ctrl-C and SIGTERM that stop ``share``, ``node`` and ``relay``, counted
for the command's whole life.

Each of them used to iterate ``trio.open_signal_receiver`` only while it
waited to be stopped. A signal that came later -- a second Ctrl-C while the
host closed, or the second SIGINT that ``timeout -s INT`` sends (one to the
process, one to its group) after a share with no receivers stopped at once
-- sat unread, and trio raises an unread signal again when its receiver
closes: the clean stop ended as "interrupted", exit 130, in 5 of 6 runs of
``timeout -s INT 1.5 p2pshare share f.txt``.

Here the handler only counts: each signal schedules one increment on the
trio loop (``TrioToken.run_sync_soon``, which a signal handler may call),
and the command waits for the count it needs (:meth:`StopSignals.received`).
Nothing is queued to be raised again, and there is no reader task: a first
version read trio's receiver from a system task, and a signal that woke it
just as the block ended crashed the run (``KeyError`` from the receiver's
emptied queue, a ``TrioInternalError``; found by review, 1 run in 2 when
the block ended one checkpoint after the signal). A signal after the block
ends meets the handler that was there before (trio's: KeyboardInterrupt).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import trio

__all__ = ["StopSignals", "stop_signals"]

#: The signals a long-running command stops cleanly on (exit 0).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """How many stop signals came so far, and a way to wait for more."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = trio.Event()

    async def received(self, count: int = 1) -> None:
        """Return once ``count`` signals have come in all (at once if they have)."""
        while self.count < count:
            await self._changed.wait()

    def _add(self) -> None:
        self.count += 1
        self._changed.set()
        self._changed = trio.Event()


@contextmanager
def stop_signals() -> Iterator[StopSignals]:
    """Count SIGINT and SIGTERM until the block ends (inside ``trio.run``,
    in the main thread, where Python runs signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("stop_signals() needs the main thread")
    state = StopSignals()
    token = trio.lowlevel.current_trio_token()

    def handler(signum: int, frame: FrameType | None) -> None:
        try:
            token.run_sync_soon(state._add)  # not idempotent: each signal counts
        except trio.RunFinishedError:
            pass  # the run is over: nothing is left to stop

    before = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield state
    finally:
        for signum, old in before.items():
            signal.signal(signum, old)
