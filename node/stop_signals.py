"""The Ctrl-C and SIGTERM that stop ``share``, ``node`` and ``relay``, read
for the command's whole life.

Each of them used to iterate ``trio.open_signal_receiver`` only while it
waited to be stopped. A signal that came later -- a second Ctrl-C while the
host closed, or the second SIGINT that ``timeout -s INT`` sends (one to the
process, one to its group) after a share with no receivers stopped at once
-- sat unread, and trio raises an unread signal again when its receiver
closes: the clean stop ended as "interrupted", exit 130, in 5 of 6 runs of
``timeout -s INT 1.5 p2pshare share f.txt``. Here one task reads every
signal as it comes and counts it; the command waits for the count it needs
(:meth:`StopSignals.received`). A signal that comes once the command is on
its way out is spent, not raised again.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import trio

__all__ = ["StopSignals", "stop_signals"]

#: The signals a long-running command stops cleanly on (exit 0).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """How many stop signals came so far, and a way to wait for more."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = trio.Event()
        self._reading = trio.CancelScope()

    async def received(self, count: int = 1) -> None:
        """Return once ``count`` signals have come in all (at once if they have)."""
        while self.count < count:
            await self._changed.wait()

    async def next(self) -> None:
        """Return at the next signal after those already counted."""
        await self.received(self.count + 1)

    def _add(self) -> None:
        self.count += 1
        self._changed.set()
        self._changed = trio.Event()

    async def _read(self, receiver: AsyncIterator[int]) -> None:
        with self._reading:
            while not self._reading.cancel_called:
                try:
                    await receiver.__anext__()
                except RuntimeError:  # the receiver closed between two signals
                    return
                self._add()


@contextmanager
def stop_signals() -> Iterator[StopSignals]:
    """Count SIGINT and SIGTERM until the block ends (inside ``trio.run``,
    main thread). The reader is a system task, so the block's own errors
    pass through unchanged (a nursery would wrap them in groups)."""
    state = StopSignals()
    with trio.open_signal_receiver(*STOP_SIGNALS) as receiver:
        trio.lowlevel.spawn_system_task(state._read, receiver, name="p2pshare stop signals")
        try:
            yield state
        finally:
            state._reading.cancel()
