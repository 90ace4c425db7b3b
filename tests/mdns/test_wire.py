"""The mDNS codec: round trips, and every bound holds against hostile bytes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pshare.node.mdns import wire
from p2pshare.node.mdns.wire import Message, Question, Record, RecordType, WireError


def _header(qd: int = 0, an: int = 0, ns: int = 0, ar: int = 0, flags: int = 0) -> bytes:
    return struct.pack("!HHHHHH", 0, flags, qd, an, ns, ar)


def test_query_round_trip() -> None:
    msg = Message(questions=(Question("_p2p._udp.local", RecordType.PTR),))
    assert wire.decode(wire.encode(msg)) == msg


def test_response_round_trip() -> None:
    ptr = Record("_p2p._udp.local", RecordType.PTR, 120, target="abc._p2p._udp.local")
    txt = Record("abc._p2p._udp.local", RecordType.TXT, 120, texts=(b"dnsaddr=/ip4/100.64.0.2/tcp/1/p2p/Qm",))
    msg = Message(flags=wire.FLAG_RESPONSE, answers=(ptr,), additionals=(txt,))
    back = wire.decode(wire.encode(msg))
    assert back == msg and back.is_response


def test_compressed_names_are_followed() -> None:
    name = b"\x04_p2p\x04_udp\x05local\x00"  # at offset 12, right after the header
    rdata = b"\x01x\xc0\x0c"  # "x" + a pointer back to the owner name
    pkt = _header(an=1, flags=0x8400) + name + struct.pack("!HHIH", 12, 1, 120, len(rdata)) + rdata
    msg = wire.decode(pkt)
    assert msg.answers[0].name == "_p2p._udp.local"
    assert msg.answers[0].target == "x._p2p._udp.local"


def test_pointer_loop_is_refused() -> None:
    pkt = _header(qd=1) + b"\xc0\x0c" + b"\x00\x0c\x00\x01"  # points at itself
    with pytest.raises(WireError):
        wire.decode(pkt)


def test_forward_pointer_is_refused() -> None:
    pkt = _header(qd=1) + b"\xc0\x20" + b"\x00\x0c\x00\x01" + b"\x00" * 40
    with pytest.raises(WireError):
        wire.decode(pkt)


def test_counts_are_bounded_before_reading() -> None:
    with pytest.raises(WireError, match="too many"):
        wire.decode(_header(an=60000))
    with pytest.raises(WireError, match="too many"):
        wire.decode(_header(qd=wire.MAX_QUESTIONS + 1))


def test_packet_size_is_bounded() -> None:
    with pytest.raises(WireError, match="too large"):
        wire.decode(_header() + b"\x00" * wire.MAX_PACKET)


def test_long_names_are_refused() -> None:
    name = (b"\x3f" + b"a" * 63) * 5 + b"\x00"  # 320 bytes
    with pytest.raises(WireError, match="too long"):
        wire.decode(_header(qd=1) + name + b"\x00\x0c\x00\x01")


def test_record_data_past_the_packet_is_refused() -> None:
    pkt = _header(an=1, flags=0x8400) + b"\x00" + struct.pack("!HHIH", 16, 1, 120, 500) + b"\x03abc"
    with pytest.raises(WireError, match="past the packet"):
        wire.decode(pkt)


def test_txt_strings_bounded() -> None:
    rdata = b"\x00" * (wire.MAX_TXT_STRINGS + 1)
    pkt = _header(an=1, flags=0x8400) + b"\x00" + struct.pack("!HHIH", 16, 1, 1, len(rdata)) + rdata
    with pytest.raises(WireError, match="TXT"):
        wire.decode(pkt)


def test_unknown_types_are_skipped() -> None:
    a_record = b"\x00" + struct.pack("!HHIH", 1, 1, 120, 4) + b"\x64\x40\x00\x01"
    msg = wire.decode(_header(an=1, flags=0x8400) + a_record)
    assert msg.answers == ()


def test_cannot_encode_oversized_txt() -> None:
    with pytest.raises(WireError):
        wire.encode(Message(answers=(Record("a", RecordType.TXT, 1, texts=(b"x" * 256,)),)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_decode_or_raise_wire_error(data: bytes) -> None:
    try:
        wire.decode(data)
    except WireError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_mutated_responses_decode_or_raise_wire_error(noise: bytes) -> None:
    ptr = Record("_p2p._udp.local", RecordType.PTR, 120, target="abc._p2p._udp.local")
    good = bytearray(wire.encode(Message(flags=wire.FLAG_RESPONSE, answers=(ptr,))))
    for i, b in enumerate(noise):
        good[(i * 7 + b) % len(good)] = b
    try:
        wire.decode(bytes(good))
    except WireError:
        pass
