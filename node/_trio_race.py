"""Two small waits over trio: ``first_of`` (whichever of several waits ends
first; structured: one nursery, the winner cancels) and ``until`` (a state
re-checked after each event until it holds)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

__all__ = ["first_of", "until"]


async def first_of(*waits: Callable[[], Awaitable[object]]) -> None:
    """Return when the first of ``waits`` returns; the others are cancelled."""
    async with trio.open_nursery() as nursery:

        async def run(wait: Callable[[], Awaitable[object]]) -> None:
            await wait()
            nursery.cancel_scope.cancel()

        for wait in waits:
            nursery.start_soon(run, wait)


async def until(next_event: Callable[[], Awaitable[object]], done: Callable[[], bool]) -> None:
    """Return once ``done()`` holds (at once, with no checkpoint, if it
    does); it is re-checked after each ``next_event()``. The caller's cancel
    scope is the deadline.

    Why one helper: a wait woken by events instead of a timer is right only
    in this order: be subscribed (the caller opens its event source before
    calling), then look, then sleep until the next event and look again. A
    change between the look and the sleep is then an event still to come,
    not a missed wake-up. The waits that need it say only what they wait
    for and what wakes them."""
    while not done():
        await next_event()
