"""Which peers have a DCUtR round under way, and a wait for that to change.

A round's punched connection reaches the swarm before the round reports it,
so a watcher that sees a direct connection while a round runs waits for the
round's word; a round may also end without one (already direct, a failure
told later or not at all). :class:`Rounds` counts the rounds per peer and
tells a shared :class:`Changes` each time a round starts or ends, so that
wait is woken when the round ends instead of re-checking on a timer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trio

from p2pshare.node._trio_race import until

__all__ = ["Changes", "Rounds"]


class Changes:
    """Wakes every :meth:`until` waiter each time :meth:`tell` is called."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def tell(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def until(self, done: Callable[[], bool]) -> None:
        """Return once ``done()`` (at once if it is); it is re-checked after
        each change. The caller's cancel scope is the deadline."""
        await until(lambda: self._event.wait(), done)  # read at each wait: tell() replaces the event


class Rounds:
    """Peers with a round under way, counted (one peer may have several at
    once: two relayed connections, or rounds we answer in parallel)."""

    def __init__(self, changes: Changes | None = None) -> None:
        self._count: dict[str, int] = {}
        self._changes = changes or Changes()

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._count

    def __len__(self) -> int:
        return len(self._count)

    @contextmanager
    def running(self, peer_id: str) -> Iterator[None]:
        """One round with ``peer_id`` for as long as the block runs."""
        self._count[peer_id] = self._count.get(peer_id, 0) + 1
        self._changes.tell()
        try:
            yield
        finally:
            left = self._count.pop(peer_id) - 1
            if left:
                self._count[peer_id] = left
            self._changes.tell()
