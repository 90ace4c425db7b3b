"""A protocol name that is not UTF-8 is refused, and the host lives on (patch ``mss_read_text``).

Upstream's listener let ``UnicodeDecodeError`` out of its negotiation,
which ended the connection's stream task and, through py-libp2p's
nurseries, the host: one stream from any peer stopped a node. Two real
hosts in one process; the attacker writes raw yamux stream bytes.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.utils import encode_delim

from p2pshare.node.host import LibP2PByteStream, open_host

ECHO = "/t/echo"


async def _echo(stream: LibP2PByteStream) -> None:
    while data := await stream.read(65536):
        await stream.write(data)


@pytest.mark.parametrize("name", [b"\xbf\xff\xfe", b"/ok/\xc3(\n"[:-1], b"\x80" * 40])
async def test_a_protocol_name_that_is_not_utf8_is_refused_and_the_host_lives_on(name: bytes) -> None:
    async with open_host(create_new_key_pair()) as victim, open_host(create_new_key_pair()) as attacker:
        victim.set_stream_handler(ECHO, _echo)
        with trio.fail_after(15):
            await attacker.connect(victim.peer_id, victim.listen_addrs(), timeout=5)
            [conn] = attacker.connections(victim.peer_id)
            muxed: Any = conn._muxed()  # raw yamux, below multistream
            raw = await muxed.open_stream()
            await raw.write(encode_delim(b"/multistream/1.0.0") + encode_delim(name))
            with pytest.raises(Exception):  # noqa: B017,PT011 - refused: "na" then a reset, or just the reset
                while True:
                    got = await raw.read(1024)
                    assert got  # the header and "na" may come first; the stream ends in a reset or EOF
            # The same connection still serves a well-formed stream.
            stream = await attacker.open_stream(victim.peer_id, ECHO)
            await stream.write(b"still here")
            assert await stream.read(64) == b"still here"
            await stream.close_write()
