"""A relay that announces every kind of address go and js relays announce:
``python -m tests.hostile.many_kinds_relay``.

Prints its multiaddr as the first line of stdout, then answers each RESERVE
with OK and reservation addresses of many kinds: ``/ws``, ``/tls/ws``,
``/udp/…/quic-v1``, ``/webtransport/certhash/…``, ``/webrtc-direct``, and
last one plain TCP address. One such address in a reservation made
``share`` end with "bad share code" and print no code (a hostile-peer
review, stop 43); honest public relays announce them too. Circuits are
refused (the test needs only the reservation).
"""

from __future__ import annotations

import time

import multiaddr
import trio

from p2pshare.node.circuit.wire import (
    HOP_PROTOCOL_ID,
    HopMessage,
    HopType,
    Reservation,
    Status,
    encode_hop,
    read_hop,
)
from p2pshare.node.host import LibP2PByteStream, open_host
from p2pshare.node.identity import generate_identity

#: The one address a client can use (TEST-NET-3: never dialed by the test).
TCP = "/ip4/203.0.113.77/tcp/4001"


def announced(peer_id: str) -> list[bytes]:
    kinds = [
        "/ip4/203.0.113.77/tcp/4001/ws",
        "/dns4/relay.example/tcp/443/tls/sni/relay.example/ws",
        "/ip4/203.0.113.77/udp/4001/quic-v1",
        "/ip4/203.0.113.77/udp/4001/quic-v1/webtransport",
        "/ip4/203.0.113.77/udp/4002/webrtc-direct",
        "/ip6/2001:db8::7/udp/4001/quic-v1",
        "/ip4/203.0.113.77/tcp/4003/ws",
        "/ip4/203.0.113.77/tcp/4004/ws",
        "/ip4/203.0.113.77/tcp/4005/ws",
        TCP,
    ]
    return [multiaddr.Multiaddr(f"{k}/p2p/{peer_id}").to_bytes() for k in kinds]


async def main() -> None:
    async with open_host(generate_identity(), ["/ip4/127.0.0.1/tcp/0"]) as host:

        async def hop(stream: LibP2PByteStream) -> None:
            msg = await read_hop(stream.read)
            if msg.type is not HopType.RESERVE:
                await stream.write(encode_hop(HopMessage(HopType.STATUS, status=Status.PERMISSION_DENIED)))
                return
            reservation = Reservation(int(time.time()) + 3600, tuple(announced(host.peer_id)), None)
            await stream.write(encode_hop(HopMessage(HopType.STATUS, status=Status.OK, reservation=reservation)))

        host.set_stream_handler(HOP_PROTOCOL_ID, hop)
        print(f"{host.listen_addrs()[0]}/p2p/{host.peer_id}", flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main)
