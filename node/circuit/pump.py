"""Splice two byte streams into a relayed connection, enforcing its limits.

Two directional pumps in one nursery; each reads as much as the muxer has
buffered (up to 1 MiB) and writes it on, so the per-byte Python cost is one
read and the writer's frame splitting. A direction's EOF is propagated as a
half-close; the circuit ends when both directions have ended, when either
stream breaks (both are reset), when the duration limit passes or when a
direction carries more than the data limit (both reset, as the spec asks).
Limits of 0 are unlimited: no timer, no byte budget.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import trio

from p2pshare.node.circuit.wire import Limit
from p2pshare.transfer.stream import ByteStream

__all__ = ["splice", "SpliceResult", "READ_SIZE"]

READ_SIZE = 1 << 20


@dataclass(frozen=True)
class SpliceResult:
    reason: str  # "closed", "duration limit", "data limit", or what broke
    bytes_ab: int
    bytes_ba: int

    @property
    def clean(self) -> bool:
        return self.reason == "closed"


class _Direction:
    def __init__(self, src: ByteStream, dst: ByteStream, budget: int) -> None:
        self.src = src
        self.dst = dst
        self.budget = budget  # 0: unlimited
        self.moved = 0

    async def run(self) -> None:
        src, dst = self.src, self.dst
        if self.budget == 0:
            while True:
                data = await src.read(READ_SIZE)
                if not data:
                    break
                self.moved += len(data)
                await dst.write(data)
        else:
            left = self.budget
            while True:
                data = await src.read(READ_SIZE)
                if not data:
                    break
                if len(data) > left:
                    if left:
                        await dst.write(data[:left])
                    self.moved += left
                    raise _OverLimit()
                left -= len(data)
                self.moved += len(data)
                await dst.write(data)
        await dst.close_write()


class _OverLimit(Exception):
    pass


async def splice(a: ByteStream, b: ByteStream, limit: Limit | None = None) -> SpliceResult:
    """Forward ``a`` ⇄ ``b`` until both ends close or a limit is hit."""
    budget = limit.data if limit else 0
    duration = limit.duration if limit else 0
    ab, ba = _Direction(a, b, budget), _Direction(b, a, budget)
    failure: list[str] = []

    async def guard(direction: _Direction, cancel: trio.CancelScope) -> None:
        try:
            await direction.run()
        except _OverLimit:
            failure.append("data limit")
            cancel.cancel()
        except Exception as e:  # either stream broke: the circuit is over
            failure.append(str(e) or type(e).__name__)
            cancel.cancel()

    timer = trio.move_on_after(duration) if duration else contextlib.nullcontext()
    with timer as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(guard, ab, nursery.cancel_scope)
            nursery.start_soon(guard, ba, nursery.cancel_scope)
    if scope is not None and scope.cancelled_caught and not failure:
        failure.append("duration limit")
    if failure:
        with trio.CancelScope(shield=True):
            await a.reset()
            await b.reset()
    return SpliceResult(failure[0] if failure else "closed", ab.moved, ba.moved)
