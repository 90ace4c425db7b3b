"""relay.wire: codec round trips, framing bounds, validation; vouchers."""

from __future__ import annotations

from typing import Any

import pytest
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.pb import circuit_pb2 as pb

from p2pshare.node.circuit import wire
from p2pshare.node.circuit.voucher import VoucherError, make_voucher, open_voucher
from p2pshare.node.circuit.wire import (
    HopMessage,
    HopType,
    Limit,
    Peer,
    Reservation,
    Status,
    StopMessage,
    StopType,
    WireError,
)

PID = ID.from_pubkey(create_new_key_pair().public_key).to_bytes()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self, n: int) -> bytes:
        out, self.data = self.data[:n], self.data[n:]
        return out


def _body(framed: bytes) -> bytes:
    value, used = wire.decode_varint(framed)  # type: ignore[misc]
    assert len(framed) == used + value
    return framed[used:]


@pytest.mark.parametrize(
    "msg",
    [
        HopMessage(HopType.RESERVE),
        HopMessage(HopType.CONNECT, peer=Peer(PID, (b"\x04\x7f\x00\x00\x01\x06\x0f\xa1",))),
        HopMessage(
            HopType.STATUS,
            status=Status.OK,
            reservation=Reservation(1_900_000_000, (b"\x04\x7f\x00\x00\x01",), b"v" * 100),
            limit=Limit(120, 131072),
        ),
        HopMessage(HopType.STATUS, status=Status.RESERVATION_REFUSED),
        HopMessage(HopType.STATUS, status=Status.OK, limit=Limit(0, 5)),
    ],
)
def test_hop_round_trip(msg: HopMessage) -> None:
    assert wire.decode_hop(_body(wire.encode_hop(msg))) == msg


@pytest.mark.parametrize(
    "msg",
    [
        StopMessage(StopType.CONNECT, peer=Peer(PID), limit=Limit(7, 0)),
        StopMessage(StopType.STATUS, status=Status.CONNECTION_FAILED),
    ],
)
def test_stop_round_trip(msg: StopMessage) -> None:
    assert wire.decode_stop(_body(wire.encode_stop(msg))) == msg


def test_unlimited_limit_is_encoded_as_empty_fields() -> None:
    raw = pb.HopMessage()
    raw.ParseFromString(_body(wire.encode_hop(HopMessage(HopType.STATUS, status=Status.OK, limit=Limit()))))
    assert raw.HasField("limit") and not raw.limit.HasField("data") and not raw.limit.HasField("duration")


async def test_read_frame_stops_at_the_message() -> None:
    framed = wire.encode_hop(HopMessage(HopType.RESERVE))
    reader = _Reader(framed + b"relayed bytes")
    assert await wire.read_hop(reader.read) == HopMessage(HopType.RESERVE)
    assert reader.data == b"relayed bytes"


async def test_oversize_prefix_is_refused_before_reading_the_body() -> None:
    reader = _Reader(wire.encode_varint(wire.MAX_MESSAGE_SIZE + 1) + b"x" * 10)
    with pytest.raises(WireError) as e:
        await wire.read_frame(reader.read)
    assert e.value.status == Status.MALFORMED_MESSAGE
    assert reader.data == b"x" * 10


async def test_eof_inside_a_message() -> None:
    with pytest.raises(EOFError):
        await wire.read_frame(_Reader(b"\x05abc").read)
    with pytest.raises(EOFError):
        await wire.read_frame(_Reader(b"").read)


@pytest.mark.parametrize("prefix", [b"\xff" * 11, b"\x80\x00"], ids=["too-long", "non-minimal"])
async def test_bad_varints(prefix: bytes) -> None:
    with pytest.raises(WireError):
        await wire.read_frame(_Reader(prefix + b"x" * 20).read)


def _hop_bytes(**fields: Any) -> bytes:
    return bytes(pb.HopMessage(**fields).SerializeToString())


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xff\xff",  # not a protobuf
        _hop_bytes(),  # no type
        b"\x08\x07",  # type 7
        _hop_bytes(type=pb.HopMessage.CONNECT),  # CONNECT without peer
        _hop_bytes(type=pb.HopMessage.CONNECT, peer=pb.PeerId(id=b"\x12\x20abc")),  # short multihash
        _hop_bytes(type=pb.HopMessage.CONNECT, peer=pb.PeerId(id=b"\x99\x01" + b"x" * 10)),  # unknown hash
        _hop_bytes(type=pb.HopMessage.CONNECT, peer=pb.PeerId(id=PID, addrs=[b"a"] * 33)),  # too many addrs
        _hop_bytes(type=pb.HopMessage.STATUS),  # STATUS without status
        b"\x08\x02\x28\x7b",  # status 123
        _hop_bytes(type=pb.HopMessage.STATUS, status=100, reservation=pb.Reservation(addrs=[b"a"])),  # no expire
        b"\x08\x00" + b"\x32\xff\x1f" + b"x" * 4095,  # oversize body
    ],
    ids=[
        "garbage",
        "no-type",
        "bad-type",
        "no-peer",
        "short-id",
        "bad-hash",
        "addrs",
        "no-status",
        "bad-status",
        "no-expire",
        "oversize",
    ],
)
def test_malformed_hop(body: bytes) -> None:
    with pytest.raises(WireError) as e:
        wire.decode_hop(body)
    assert e.value.status == Status.MALFORMED_MESSAGE


def test_malformed_stop() -> None:
    with pytest.raises(WireError):
        wire.decode_stop(bytes(pb.StopMessage(type=pb.StopMessage.CONNECT).SerializeToString()))


def test_voucher_round_trip_and_tamper() -> None:
    relay = create_new_key_pair()
    relay_id = ID.from_pubkey(relay.public_key).to_bytes()
    v = make_voucher(relay.private_key, relay_id, PID, 1_900_000_000)
    info = open_voucher(v)
    assert (info.relay, info.peer, info.expiration) == (relay_id, PID, 1_900_000_000)
    tampered = v.replace(PID, PID[:-1] + bytes([PID[-1] ^ 1]))
    with pytest.raises(VoucherError):
        open_voucher(tampered)
    other = create_new_key_pair()
    with pytest.raises(VoucherError):  # signed by someone who is not the relay named inside
        open_voucher(make_voucher(other.private_key, relay_id, PID, 1))


def test_only_tcp_relay_addresses_are_kept_even_after_many_others() -> None:
    """go and js relays announce /ws, /webtransport, QUIC and WebRTC
    addresses too; one in a reservation made ``share`` print no code (stop
    43). Only plain TCP ones are kept, looked for among all 32 announced."""
    import multiaddr

    from p2pshare.node.circuit.types import decode_relay_addrs
    from p2pshare.sharecode.addresses import is_shareable

    relay = "12D3KooWJD8XE1cqqybQcFt7cxxC7mzT2s79XcdBjz5oVbd1DGCT"
    others = [f"/ip4/203.0.113.7/tcp/{4000 + i}/ws" for i in range(10)] + [
        "/ip4/203.0.113.7/udp/4001/quic-v1/webtransport",
        "/ip4/203.0.113.7/udp/4002/webrtc-direct",
    ]
    raw = [
        multiaddr.Multiaddr(a).to_bytes()
        for a in [*others, "/ip4/203.0.113.7/tcp/4001", f"/dns4/r.example/tcp/443/p2p/{relay}"]
    ]
    kept = decode_relay_addrs(raw, relay)
    assert kept == (f"/ip4/203.0.113.7/tcp/4001/p2p/{relay}", f"/dns4/r.example/tcp/443/p2p/{relay}")
    sharer = "12D3KooWNVGUcK31QppYgNygNRDP95GSXH8EzFZ23tmjmeRPw8JB"
    assert all(is_shareable(f"{a}/p2p-circuit/p2p/{sharer}", sharer) for a in kept)
    assert not is_shareable(f"/ip4/203.0.113.7/tcp/4000/ws/p2p/{relay}/p2p-circuit/p2p/{sharer}", sharer)
