"""``first_of``: wait for whichever of several waits ends first (structured: one nursery, the winner cancels)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

__all__ = ["first_of"]


async def first_of(*waits: Callable[[], Awaitable[object]]) -> None:
    """Return when the first of ``waits`` returns; the others are cancelled."""
    async with trio.open_nursery() as nursery:

        async def run(wait: Callable[[], Awaitable[object]]) -> None:
            await wait()
            nursery.cancel_scope.cancel()

        for wait in waits:
            nursery.start_soon(run, wait)
