"""``Traversal.wait_direct`` names the path DCUtR made, not the race's loser.

natlab internet (issue 10): the sharer reported ``method: hole-punch`` while
the receiver printed ``path: direct``: the punched connection reaches the
swarm (and wakes the waiter) before the DCUtR round that made it reports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing

from p2pshare.node.dcutr._trio_rounds import Changes
from p2pshare.node.events import Upgraded
from p2pshare.node.traversal import Traversal

PEER = "12D3KooWPeer"


class FakeHost:
    """Just what ``wait_direct`` looks at: the path and connection events."""

    def __init__(self) -> None:
        self.path: str | None = "relayed"

    def connection_path(self, peer_id: str) -> str | None:
        return self.path

    @asynccontextmanager
    async def connection_events(self) -> AsyncIterator[trio.MemoryReceiveChannel[Any]]:
        send, recv = trio.open_memory_channel[Any](8)
        async with send, recv:
            yield recv


class FakeDCUtR:
    """A round under way with PEER until ``end_round`` (which tells no outcome)."""

    def __init__(self) -> None:
        self.rounds = True
        self.changes = Changes()

    def busy(self, peer_id: str) -> bool:
        return self.rounds

    async def wait_idle(self, peer_id: str) -> None:
        await self.changes.until(lambda: not self.busy(peer_id))

    def end_round(self) -> None:
        self.rounds = False
        self.changes.tell()


def _traversal() -> tuple[Traversal, FakeHost, FakeDCUtR]:
    host, dcutr = FakeHost(), FakeDCUtR()
    trav = Traversal(host, None)  # type: ignore[arg-type]
    trav._dcutr = dcutr  # type: ignore[assignment]
    return trav, host, dcutr


async def test_a_direct_connection_during_a_round_waits_for_the_rounds_word() -> None:
    trav, host, _ = _traversal()
    host.path = "direct"  # the punched connection, before DCUtR said so
    got: list[str | None] = []
    async with trio.open_nursery() as nursery:

        async def wait() -> None:
            got.append(await trav.wait_direct(PEER, 5.0))

        nursery.start_soon(wait)
        await trio.sleep(0.2)
        assert got == []
        trav.on_dcutr(Upgraded(PEER, "responder", "hole-punch", 0.8, 1, 1, 0.17, "/ip4/203.0.113.194/tcp/4001"))
    assert got == ["hole-punched"]


async def test_a_round_that_ends_without_a_word_leaves_a_plain_direct_path() -> None:
    """Woken by the round's end (DCUtR.wait_idle), not by a timer."""
    trav, host, dcutr = _traversal()
    host.path = "direct"
    got: list[str | None] = []
    with trio.fail_after(2.0):
        async with trio.open_nursery() as nursery:

            async def wait() -> None:
                got.append(await trav.wait_direct(PEER, 5.0))

            nursery.start_soon(wait)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []
            dcutr.end_round()
            await trio.testing.wait_all_tasks_blocked()
            assert got == ["direct"]


async def test_a_direct_connection_without_a_round_is_direct_at_once() -> None:
    trav, host, dcutr = _traversal()
    host.path, dcutr.rounds = "direct", False
    with trio.fail_after(0.5):
        assert await trav.wait_direct(PEER, 5.0) == "direct"
