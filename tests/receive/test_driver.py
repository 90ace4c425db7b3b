"""The receive driver against a real host (two nodes in this process, loopback).

The deadline fix of the receive core, through the real stack: a sharer that
accepts the connection but hangs up every transfer stream (as one answering
BUSY forever does) used to keep the receiver re-trying without end, since
re-reaching a connected peer succeeds at once (issue 9, finding 2).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2pshare import sharecode
from p2pshare.node.api import Node, NodeConfig
from p2pshare.node.errors import PeerUnreachableError
from p2pshare.node.events import Connected, ConnectionPath, NodeEvent
from p2pshare.node.host import LibP2PByteStream
from p2pshare.transfer import PROTOCOL_ID

LOOPBACK = NodeConfig(listen_addrs=["/ip4/127.0.0.1/tcp/0"])


async def test_a_sharer_that_keeps_hanging_up_is_given_up_on_at_the_deadline(tmp_path: Path) -> None:
    async def hang_up(stream: LibP2PByteStream) -> None:
        await stream.close_write()
        await trio.sleep(0.05)
        await stream.reset()

    events: list[NodeEvent] = []
    async with Node(LOOPBACK) as sharer, Node(LOOPBACK, on_event=events.append) as receiver:
        sharer.host.set_stream_handler(PROTOCOL_ID, hang_up)
        code = sharecode.ShareCode(
            peer_id=sharer.peer_id,
            addresses=tuple(sharer.addresses()),
            encryption_key=bytes(range(32)),
            share_code=sharecode.new_human_code(),
        )
        started = trio.current_time()
        with pytest.raises(PeerUnreachableError, match="no progress for 3 s"):
            await receiver.start_receiving(code, tmp_path / "out", timeout=3.0)
        took = trio.current_time() - started
    assert took < 6.0, took
    connected = [e for e in events if isinstance(e, Connected)]
    assert len(connected) >= 3  # it did retry, on the one open connection
    assert all(e.path is ConnectionPath.DIRECT for e in connected)
