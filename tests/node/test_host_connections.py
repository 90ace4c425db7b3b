"""The façade's typed connections and connection events (two real hosts,
TCP + Noise + yamux, in one process)."""

from __future__ import annotations

import trio
from libp2p.crypto.ed25519 import create_new_key_pair

from p2pshare.node.host import Connection, ConnectionEvent, ConnectionPath, Direction, LibP2PByteStream, open_host

ECHO = "/t/echo"


async def _echo(stream: LibP2PByteStream) -> None:
    while data := await stream.read(65536):
        await stream.write(data)


async def _next(events: trio.MemoryReceiveChannel[ConnectionEvent], peer: str, opened: bool) -> ConnectionEvent:
    async for event in events:
        if event.peer_id == peer and event.opened == opened:
            return event
    raise AssertionError("event stream ended")


async def test_connections_are_typed_and_announced() -> None:
    async with open_host(create_new_key_pair()) as a, open_host(create_new_key_pair()) as b:
        a.set_stream_handler(ECHO, _echo)
        assert a.connections(b.peer_id) == [] and a.connection_path(b.peer_id) is None
        with trio.fail_after(10):
            async with a.connection_events() as a_events, b.connection_events() as b_events:
                await b.connect(a.peer_id, a.listen_addrs(), timeout=5)
                opened = await _next(a_events, b.peer_id, True)
                dialled = await _next(b_events, a.peer_id, True)
                assert opened.path is ConnectionPath.DIRECT and dialled.path is ConnectionPath.DIRECT
                [inbound] = a.connections(b.peer_id)
                [outbound] = b.connections(a.peer_id)
                assert inbound == opened.connection and hash(inbound) == hash(opened.connection)
                assert inbound.direction is Direction.INBOUND and outbound.direction is Direction.OUTBOUND
                assert inbound.path is ConnectionPath.DIRECT and a.connection_path(b.peer_id) == "direct"
                assert not inbound.is_closed and inbound.peer_id == b.peer_id
                assert outbound.remote_address() is not None and outbound.local_port() is not None

                stream = await b.open_stream(a.peer_id, ECHO)
                assert isinstance(stream.connection, Connection) and stream.connection == outbound
                await stream.write(b"ping")
                assert await stream.read(4) == b"ping"
                assert outbound.stream_count >= 1
                await stream.close_write()

                await outbound.close()
                closed = await _next(a_events, b.peer_id, False)
                assert closed.connection == inbound
                await a.wait_disconnected(b.peer_id)
                assert not a.is_connected(b.peer_id) and inbound.is_closed and outbound.is_closed
