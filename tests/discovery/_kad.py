"""Hostile Kademlia messages for the DHT server tests and ``scripts/dht_flood.py``.

Built with our own protobuf helpers and the façade's envelope sealing, so
they can carry what no honest implementation sends: signed peer records with
thousands of addresses, providers with long address lists.
"""

from __future__ import annotations

import trio

from p2pshare.node import _libp2p_records as records
from p2pshare.node.host import LibP2PByteStream
from p2pshare.node.pbwire import field_bytes, field_varint, try_unframe

PEER_RECORD_TYPE = b"\x03\x01"  # multicodec libp2p-peer-record, as a varint


def signed_record(key_pair: records.KeyPair, addrs: list[bytes], seq: int = 1 << 62) -> bytes:
    """A signed peer record envelope (``libp2p-peer-record``) of ``key_pair`` listing ``addrs``.

    ``seq`` is high so the record replaces one the server got from identify.
    """
    peer_id = records.peer_id_of_key(key_pair.public_key)
    payload = field_bytes(1, peer_id) + field_varint(2, seq)
    payload += b"".join(field_bytes(3, field_bytes(1, a)) for a in addrs)
    return records.seal_envelope(key_pair.private_key, "libp2p-peer-record", PEER_RECORD_TYPE, payload)


def tcp_addrs(n: int, first_octet: int = 10) -> list[bytes]:
    """``n`` distinct ``/ip4/<first_octet>.x.y.z/tcp/<port>`` addresses, as bytes (8 each)."""
    out = []
    for i in range(n):
        ip = bytes([first_octet, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF])
        out.append(b"\x04" + ip + b"\x06" + (4001 + i % 60_000).to_bytes(2, "big"))
    return out


async def read_answer(stream: LibP2PByteStream) -> bytes:
    """One length-prefixed Kademlia message from ``stream`` (10 s at most)."""
    buf = b""
    with trio.fail_after(10):
        while True:
            got = try_unframe(buf, 4 << 20)
            if got is not None:
                return got[0]
            part = await stream.read(65536)
            assert part, "the server closed the stream without an answer"
            buf += part
