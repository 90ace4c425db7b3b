"""The Kademlia wire as go-libp2p-kad-dht speaks it, against our DHT server.

go-libp2p-kad-dht (the public DHT's implementation) sends ADD_PROVIDER
one-way and reuses the stream for its next request; the Kademlia spec
defines no answer to ADD_PROVIDER. py-libp2p's handler answered it with an
echo, so after one provide every later answer reached go one request late
(a go-libp2p-kad-dht v0.20 client then crashed on PUT_VALUE; issue 10).
No go toolchain here: this test writes go's byte sequence itself, against a
real ``p2pshare relay`` (a DHT server) in its own process, and checks that
the next request on the same stream gets its own answer first. It also
checks the provider record was stored, bounded (issue 9, finding 4).
"""

from __future__ import annotations

import os

import pytest

from p2pshare.node import _libp2p_provider_table, _libp2p_records
from p2pshare.node.discovery import wire
from p2pshare.node.host import open_host
from p2pshare.node.identity import generate_identity
from tests.cli.helpers import loopback_relay
from tests.discovery._kad import read_answer

pytestmark = pytest.mark.interop
KAD = "/ipfs/kad/1.0.0"


async def test_add_provider_is_bounded_and_unanswered(tmp_path: os.PathLike[str]) -> None:
    relay, server, addr = loopback_relay(tmp_path / "relay-home")  # type: ignore[operator]
    try:
        async with open_host(generate_identity(), ["/ip4/127.0.0.1/tcp/0"]) as host:
            await host.connect(server, [addr], timeout=10)
            me = host.peer_id_bytes
            key = os.urandom(32)
            many = [f"/ip4/10.{i // 250}.{i % 250}.1/tcp/{4001 + i % 1000}" for i in range(2000)]
            stream = await host.open_stream(server, KAD)
            await stream.write(wire.add_provider_request(key, me, many))
            await stream.write(wire.find_node_request(key))
            answer = _libp2p_records.KadMessage()
            answer.ParseFromString(await read_answer(stream))
            assert answer.type == _libp2p_records.KadMessage.FIND_NODE, "an ADD_PROVIDER echo came first"
            await stream.reset()

            stream = await host.open_stream(server, KAD)
            await stream.write(wire.get_providers_request(key))
            got = wire.parse_answer(
                await read_answer(stream), expect=_libp2p_records.KadMessage.GET_PROVIDERS, sender=b""
            )
            await stream.reset()
            (mine,) = [p for p in got.providers if p.peer_id == me]
            assert 0 < len(mine.addrs) <= _libp2p_provider_table.PROVIDER_ADDRS
    finally:
        relay.close()
