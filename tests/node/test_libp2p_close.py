"""node._libp2p_close: a connection closes as upstream's does, minus the
two fixed 0.1 s sleeps -- with real hosts on loopback."""

from __future__ import annotations

from typing import Any

import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.network.connection.swarm_connection import SwarmConn
from libp2p.stream_muxer.yamux import yamux

from p2pshare.node import _libp2p_close as C
from p2pshare.node import _libp2p_patches as P
from p2pshare.node.host import StreamError, open_host

PROTO = "/p2pshare-test/close/1"


async def test_a_closed_connection_ends_both_sides_streams_and_is_announced() -> None:
    P.apply()
    assert yamux.Yamux.close is C.yamux_close and SwarmConn._cleanup is C.swarm_conn_cleanup
    ended: list[str] = []
    got_data = trio.Event()

    async def handler(stream: Any) -> None:
        data = await stream.read(100)
        ended.append(f"read {data!r}")
        got_data.set()
        try:
            more = await stream.read(100)
            ended.append(f"eof {more!r}")
        except StreamError:
            ended.append("reset")

    async with open_host(create_new_key_pair()) as server, open_host(create_new_key_pair()) as client:
        server.set_stream_handler(PROTO, handler)
        await client.connect(server.peer_id, server.listen_addrs(), timeout=5)
        stream = await client.open_stream(server.peer_id, PROTO)
        await stream.write(b"hello")
        with trio.fail_after(5):
            await got_data.wait()
        [conn] = client.libp2p.get_network().connections[server.libp2p.get_id()]
        muxed = conn.muxed_conn
        async with client.connection_events() as events:
            with trio.fail_after(5):
                await client.disconnect(server.peer_id)
                # The close is announced to the swarm's notifees (our events).
                async for event in events:
                    if not event.opened and event.peer_id == server.peer_id:
                        break
        assert muxed.event_closed.is_set() and muxed.event_shutting_down.is_set()
        assert not muxed.streams and not muxed.stream_buffers
        assert not client.is_connected(server.peer_id)
        with trio.fail_after(5):
            await server.wait_disconnected(client.peer_id)  # the peer saw GO_AWAY / EOF
            while len(ended) < 2:
                await trio.sleep(0.01)
        assert ended[0] == "read b'hello'" and ended[1] in ("eof b''", "reset")
