"""Splice two byte streams into a relayed connection, enforcing its limits.

Two directional pumps in one nursery; each reads as much as the muxer has
buffered (up to 1 MiB) and writes it on, so the per-byte Python cost is one
read and the writer's frame splitting. A direction's EOF is propagated as a
half-close; the circuit ends when both directions have ended, when either
stream breaks (both are reset), when the duration limit passes or when a
direction carries more than the data limit (both reset, as the spec asks).
Limits of 0 are unlimited: no timer, no byte budget. Rate caps (a community
relay's per-circuit and total bandwidth) delay a direction's next write by
what its token buckets say; no byte is dropped. An idle limit ends (resets) a
circuit that carried no byte either way for that long: a slot nobody uses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from p2pshare.node.circuit.limits import TokenBucket
from p2pshare.node.circuit.wire import Limit
from p2pshare.transfer.stream import ByteStream

__all__ = ["splice", "SpliceResult", "READ_SIZE"]

READ_SIZE = 1 << 20


@dataclass(frozen=True)
class SpliceResult:
    reason: str  # "closed", "duration limit", "data limit", "idle", or what broke
    bytes_ab: int
    bytes_ba: int

    @property
    def clean(self) -> bool:
        return self.reason == "closed"


class _Direction:
    def __init__(self, src: ByteStream, dst: ByteStream, budget: int, buckets: Sequence[TokenBucket] = ()) -> None:
        self.src = src
        self.dst = dst
        self.budget = budget  # 0: unlimited
        self.buckets = tuple(buckets)  # rate caps: this direction's, and the relay's total
        self.moved = 0
        self.last = trio.current_time()  # when a byte last came in

    async def _paced(self, n: int) -> None:
        now = trio.current_time()
        wait = max(b.take(n, now) for b in self.buckets)
        if wait > 0:
            await trio.sleep(wait)

    async def run(self) -> None:
        src, dst = self.src, self.dst
        if self.budget == 0:
            while True:
                data = await src.read(READ_SIZE)
                if not data:
                    break
                self.last = trio.current_time()
                self.moved += len(data)
                if self.buckets:
                    await self._paced(len(data))
                await dst.write(data)
        else:
            left = self.budget
            while True:
                data = await src.read(READ_SIZE)
                if not data:
                    break
                self.last = trio.current_time()
                if len(data) > left:
                    if left:
                        await dst.write(data[:left])
                    self.moved += left
                    raise _OverLimit()
                left -= len(data)
                self.moved += len(data)
                if self.buckets:
                    await self._paced(len(data))
                await dst.write(data)
        await dst.close_write()


class _OverLimit(Exception):
    pass


async def _watch_idle(
    directions: Sequence[_Direction], idle: float, failure: list[str], cancel: trio.CancelScope
) -> None:
    """End the circuit once no byte came in either way for ``idle`` seconds."""
    while True:
        quiet = trio.current_time() - max(d.last for d in directions)
        if quiet >= idle:
            failure.append("idle")
            cancel.cancel()
            return
        await trio.sleep(idle - quiet)


async def splice(
    a: ByteStream,
    b: ByteStream,
    limit: Limit | None = None,
    *,
    circuit_rate: int = 0,
    total: TokenBucket | None = None,
    idle: float = 0,
    carried: Callable[[int], None] | None = None,
) -> SpliceResult:
    """Forward ``a`` ⇄ ``b`` until both ends close or a limit is hit.

    ``circuit_rate``: bytes per second each direction may carry (0: no cap);
    ``total``: the relay's bucket shared by all circuits (None: no cap);
    ``idle``: seconds without a byte either way that end the circuit (0: never);
    ``carried``: told the bytes moved both ways when the splice ends, also
    when it is cancelled (a relay's stop cuts its circuits: their bytes count).
    """
    budget = limit.data if limit else 0
    duration = limit.duration if limit else 0

    def buckets() -> list[TokenBucket]:
        own = [TokenBucket(circuit_rate)] if circuit_rate else []
        return own + ([total] if total is not None else [])

    ab, ba = _Direction(a, b, budget, buckets()), _Direction(b, a, budget, buckets())
    failure: list[str] = []
    running = [ab, ba]

    async def guard(direction: _Direction, cancel: trio.CancelScope) -> None:
        try:
            await direction.run()
            running.remove(direction)
            if not running:
                cancel.cancel()  # both ends closed: stop the idle watch
        except _OverLimit:
            failure.append("data limit")
            cancel.cancel()
        except Exception as e:  # either stream broke: the circuit is over
            failure.append(str(e) or type(e).__name__)
            cancel.cancel()

    timer = trio.move_on_after(duration) if duration else contextlib.nullcontext()
    try:
        with timer as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(guard, ab, nursery.cancel_scope)
                nursery.start_soon(guard, ba, nursery.cancel_scope)
                if idle:
                    nursery.start_soon(_watch_idle, (ab, ba), idle, failure, nursery.cancel_scope)
    finally:
        if carried is not None:
            carried(ab.moved + ba.moved)
    if scope is not None and scope.cancelled_caught and not failure:
        failure.append("duration limit")
    if failure:
        with trio.CancelScope(shield=True):
            await a.reset()
            await b.reset()
    return SpliceResult(failure[0] if failure else "closed", ab.moved, ba.moved)
