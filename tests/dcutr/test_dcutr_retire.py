"""Retiring the relayed connection after an upgrade (``_trio_libp2p.close_idle_relayed``).

A relayed connection is closed once a direct one exists and its last
stream has ended: woken by the host's stream-closed and connection events,
not by a timer (the fake test runs on a frozen clock: a poll never wakes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import trio
import trio.testing

from p2pshare.node.circuit.client import open_relay_client
from p2pshare.node.dcutr import _trio_libp2p as lp
from p2pshare.node.host import ConnectionEvent, ConnectionPath, Host, LibP2PByteStream
from tests.relay._util import relay_and_hosts

PEER = "12D3KooWPeer"
ECHO = "/t/echo"


class FakeConn:
    def __init__(self, path: ConnectionPath, streams: int = 0) -> None:
        self.path, self.stream_count, self.closed = path, streams, False

    async def close(self) -> None:
        self.closed = True


class FakeHost:
    def __init__(self, *conns: FakeConn) -> None:
        self.conns = list(conns)
        self.stream_subs: list[trio.MemorySendChannel[str]] = []
        self.conn_subs: list[trio.MemorySendChannel[Any]] = []

    def connections(self, peer_id: str) -> list[FakeConn]:
        return [c for c in self.conns if not c.closed] if peer_id == PEER else []

    @asynccontextmanager
    async def _sub(self, subs: list[Any]) -> AsyncIterator[Any]:
        send, recv = trio.open_memory_channel[Any](16)
        subs.append(send)
        try:
            yield recv
        finally:
            subs.remove(send)

    def stream_closed_events(self) -> Any:
        return self._sub(self.stream_subs)

    def connection_events(self) -> Any:
        return self._sub(self.conn_subs)


async def test_a_relayed_connection_closes_when_its_last_stream_does(mock_clock: trio.testing.MockClock) -> None:
    relayed, busy_relayed = FakeConn(ConnectionPath.RELAYED), FakeConn(ConnectionPath.RELAYED, streams=1)
    fake = FakeHost(FakeConn(ConnectionPath.DIRECT), relayed, busy_relayed)
    done = trio.Event()

    async def retire() -> None:
        await lp.close_idle_relayed(cast(Host, fake), PEER)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(retire)
        await trio.testing.wait_all_tasks_blocked()
        assert relayed.closed and not busy_relayed.closed and not done.is_set()
        for send in fake.stream_subs:
            send.send_nowait("12D3KooWSomeoneElse")  # another peer's stream: no effect
        await trio.testing.wait_all_tasks_blocked()
        busy_relayed.stream_count = 0
        for send in fake.stream_subs:
            send.send_nowait(PEER)
        await trio.testing.wait_all_tasks_blocked()
        assert busy_relayed.closed and done.is_set()


async def test_the_relay_stays_when_the_direct_connection_dies(mock_clock: trio.testing.MockClock) -> None:
    direct, relayed = FakeConn(ConnectionPath.DIRECT), FakeConn(ConnectionPath.RELAYED, streams=1)
    fake = FakeHost(direct, relayed)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lp.close_idle_relayed, cast(Host, fake), PEER)
        await trio.testing.wait_all_tasks_blocked()
        direct.closed = True
        relayed.stream_count = 0
        for send in fake.conn_subs:
            send.send_nowait(ConnectionEvent(False, PEER, ConnectionPath.DIRECT, cast(Any, direct)))
        await trio.testing.wait_all_tasks_blocked()
        assert not relayed.closed and not fake.conn_subs  # returned, relay kept


async def _echo(stream: LibP2PByteStream) -> None:
    try:
        while data := await stream.read(65536):
            await stream.write(data)
    except Exception:
        pass


async def test_real_hosts_the_relayed_connection_closes_as_its_stream_ends() -> None:
    """Real hosts: the stream on the relayed connection keeps it open after
    a direct connection exists; its reset (the swarm's closed_stream
    notification) closes it."""
    async with relay_and_hosts(2) as (relay, _server, (a, b)):
        b.set_stream_handler(ECHO, _echo)
        raddr = f"{relay.listen_addrs()[0]}/p2p/{relay.peer_id}"
        async with open_relay_client(b, [raddr], want=1) as b_client, open_relay_client(a, [raddr], want=0) as client:
            assert await b_client.wait_reserved(5)
            with trio.fail_after(10):
                await client.dial_via_relay(b.peer_id, raddr)
                stream = await a.open_stream(b.peer_id, ECHO)
                await stream.write(b"ping")
                assert await stream.read(4) == b"ping"
                assert stream.connection.path is ConnectionPath.RELAYED
                await lp.dial_direct(a, b.peer_id, b.listen_addrs()[0])
                done = trio.Event()

                async def retire() -> None:
                    await lp.close_idle_relayed(a, b.peer_id)
                    done.set()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(retire)
                    await trio.sleep(0.3)
                    assert lp.relayed_conns(a, b.peer_id) and not done.is_set()
                    await stream.reset()
                    with trio.fail_after(2):  # it returns once it closed the relayed connection
                        await done.wait()
                assert not lp.relayed_conns(a, b.peer_id) and lp.direct_conns(a, b.peer_id)
