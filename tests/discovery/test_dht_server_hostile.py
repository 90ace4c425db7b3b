"""Our DHT server (py-libp2p's handler behind patches) against a hostile or go-like client.

A real ``p2pshare relay`` (a DHT server) in its own process; the client is
this test, over the façade:

* one ADD_PROVIDER carrying 2,000 addresses is stored with at most
  ``PROVIDER_ADDRS`` of them (upstream kept all: one message held 419,410,
  +47 MB, and GET_PROVIDERS sent them all back; issue 9, finding 4);
* ADD_PROVIDER gets no answer (the go-like wire test is in
  ``tests/interop/test_kad_wire.py``);
* a signed peer record with 5,000 addresses in a request is not stored
  (upstream put every address in the peerstore, deduplicating in O(n^2):
  with 20,000, 12 s of blocked event loop for one request; that one is
  now over the 64 KiB request cap and reset at its length).
"""

from __future__ import annotations

import os

import pytest

from p2pshare.node import _libp2p_fixes, _libp2p_records
from p2pshare.node.discovery import wire
from p2pshare.node.host import StreamError, open_host
from p2pshare.node.identity import generate_identity
from tests.cli.helpers import loopback_relay
from tests.discovery._kad import read_answer, signed_record, tcp_addrs

pytestmark = pytest.mark.slow
KAD = "/ipfs/kad/1.0.0"


async def test_a_huge_signed_peer_record_is_not_stored(tmp_path: os.PathLike[str]) -> None:
    relay, server, addr = loopback_relay(tmp_path / "relay-home")  # type: ignore[operator]
    try:
        identity = generate_identity()
        async with open_host(identity, ["/ip4/127.0.0.1/tcp/0"]) as host:
            await host.connect(server, [addr], timeout=10)
            stream = await host.open_stream(server, KAD)
            await stream.write(wire.find_node_request(os.urandom(34), signed_record(identity, tcp_addrs(20_000))))
            with pytest.raises(StreamError, match="reset"):
                await read_answer(stream)
            stream = await host.open_stream(server, KAD)
            await stream.write(wire.find_node_request(os.urandom(34), signed_record(identity, tcp_addrs(5_000))))
            await read_answer(stream)
            await stream.reset()
            async with open_host(
                generate_identity(), ["/ip4/127.0.0.1/tcp/0"]
            ) as other:  # the server leaves the requester out
                await other.connect(server, [addr], timeout=10)
                stream = await other.open_stream(server, KAD)
                await stream.write(wire.find_node_request(host.peer_id_bytes))
                answer = _libp2p_records.KadMessage()
                answer.ParseFromString(await read_answer(stream))
                await stream.reset()
            mine = [p for p in answer.closerPeers if p.id == host.peer_id_bytes]
            assert mine and 0 < len(mine[0].addrs) <= _libp2p_fixes.SIGNED_RECORD_ADDRS  # from identify
    finally:
        relay.close()
