"""The round's event waits (``_trio_libp2p.wait_direct`` / ``wait_addrs``) over a fake host.

Each returns at once when what it waits for is already there, else on the
event that brings it, and never for a connection on our own punched socket
(it joins the swarm before the punch's upgrade returns; counting it as the
peer's dial made a round report "(peer's dial)" for its own punch).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import trio
import trio.testing

from p2pshare.node.dcutr import _trio_libp2p as lp
from p2pshare.node.host import ConnectionPath, Host

PEER = "12D3KooWPeer"


class FakeConn:
    def __init__(self, ends: lp.Ends | None, path: ConnectionPath = ConnectionPath.DIRECT) -> None:
        self.path, self._ends = path, ends

    def local_port(self) -> int | None:
        return self._ends[0] if self._ends else None

    def remote_address(self) -> tuple[str, int] | None:
        return self._ends[1] if self._ends else None


class FakeHost:
    def __init__(self) -> None:
        self.conns: list[FakeConn] = []
        self.addrs: list[str] = []
        self._subs: list[trio.MemorySendChannel[object]] = []

    def connections(self, peer_id: str) -> list[FakeConn]:
        return list(self.conns) if peer_id == PEER else []

    def peer_addrs(self, peer_id: str) -> list[str]:
        return list(self.addrs) if peer_id == PEER else []

    @asynccontextmanager
    async def _events(self) -> AsyncIterator[trio.MemoryReceiveChannel[object]]:
        send, recv = trio.open_memory_channel[object](16)
        self._subs.append(send)
        try:
            yield recv
        finally:
            self._subs.remove(send)

    connection_events = identify_events = _events

    def tell(self) -> None:
        for send in self._subs:
            send.send_nowait(PEER)


def _host(fake: FakeHost) -> Host:
    return cast(Host, fake)


def test_socket_ends_are_those_of_the_connection_on_that_socket() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()) as a:
            b, _ = server.accept()
            with b:
                assert lp.socket_ends(cast(Any, a)) == (a.getsockname()[1], ("127.0.0.1", b.getsockname()[1]))
    unconnected = socket.socket()
    with unconnected:
        assert lp.socket_ends(cast(Any, unconnected)) is None
    assert lp.conn_ends(cast(Any, FakeConn(None))) is None
    assert lp.conn_ends(cast(Any, FakeConn((5, ("10.0.0.2", 6))))) == (5, ("10.0.0.2", 6))


async def test_wait_direct_returns_at_once_when_a_direct_connection_exists() -> None:
    fake = FakeHost()
    fake.conns.append(FakeConn((1, ("10.0.0.2", 2))))
    with trio.fail_after(1):
        await lp.wait_direct(_host(fake), PEER)


async def test_wait_direct_wakes_on_the_event_and_ignores_relayed_and_our_own_socket() -> None:
    fake = FakeHost()
    ours = (4001, ("10.0.0.2", 5001))
    done = trio.Event()

    async def waiter() -> None:
        await lp.wait_direct(_host(fake), PEER, lambda: ours)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        fake.conns.append(FakeConn(None, ConnectionPath.RELAYED))
        fake.conns.append(FakeConn(ours))  # our punched socket, mid-upgrade
        fake.tell()
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        fake.conns.append(FakeConn((4000, ("10.0.0.2", 5000))))  # the peer's dial to our listener
        fake.tell()
        with trio.fail_after(1):
            await done.wait()


async def test_wait_direct_is_bounded_by_the_callers_scope() -> None:
    fake = FakeHost()
    with trio.move_on_after(0.05) as scope:
        await lp.wait_direct(_host(fake), PEER)
    assert scope.cancelled_caught


async def test_wait_addrs_wakes_when_identify_stores_them() -> None:
    fake = FakeHost()
    fake.addrs.append("/ip4/10.0.0.2/tcp/1")
    with trio.fail_after(1):
        await lp.wait_addrs(_host(fake), PEER)  # already there
    fake.addrs.clear()
    done = trio.Event()

    async def waiter() -> None:
        await lp.wait_addrs(_host(fake), PEER)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        fake.tell()  # identify stored nothing for it yet
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        fake.addrs.append("/ip4/10.0.0.2/tcp/1")
        fake.tell()
        with trio.fail_after(1):
            await done.wait()
