"""Fuzzing every decoder of bytes (or text) that a peer or a user hands us.

Each decoder must, for any input, either return a value or raise the one
error type it declares for bad input: never an IndexError, struct.error,
UnicodeDecodeError, RecursionError or a hang. Inputs are random bytes and
mutations (bit flips, truncations, insertions, splices) of valid
encodings. ``./scripts/test`` runs a bounded number of examples per decoder
(``P2PSHARE_FUZZ_EXAMPLES``, default 150); ``scripts/fuzz`` runs many more.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pshare import sharecode
from p2pshare.node import pbwire
from p2pshare.node.autonat import wire as autonat_wire
from p2pshare.node.circuit import wire as circuit_wire
from p2pshare.node.dcutr import wire as dcutr_wire
from p2pshare.node.discovery import wire as dht_wire
from p2pshare.node.natinfo import stun
from p2pshare.node.natinfo._trio_identify import observed_addr_field
from p2pshare.node.shortcode import wire as shortcode_wire
from p2pshare.sharecode import short as short_code
from p2pshare.transfer import manifest, wire
from p2pshare.transfer.errors import UnavailableReason

EXAMPLES = int(os.environ.get("P2PSHARE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PID = bytes.fromhex("0024080112201f0e4f8a1a5c3b6d2e9f00112233445566778899aabbccddeeff0011")
ADDR = bytes.fromhex("047f000001060fa1")  # /ip4/127.0.0.1/tcp/4001


def _body(framed: bytes) -> bytes:
    got = pbwire.try_unframe(framed, 1 << 20)
    assert got is not None
    return got[0]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A valid encoding, damaged a few times."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "splice", "byte"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and data:
            data[pos] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x0A, 0x22, 0x5C]))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=32))
        else:
            other = draw(st.sampled_from(seeds))
            data[pos:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data)


def inputs(seeds: list[bytes], max_size: int = 4096) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=max_size), mutated(seeds))


def check(decode: Callable[[bytes], object], allowed: tuple[type[BaseException], ...]) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        try:
            decode(data)
        except allowed:
            pass

    return run


# -- seeds: valid encodings -------------------------------------------------------
_MANIFEST = manifest.make_manifest(
    name="share",
    description="d\nx",
    sharer="me",
    chunk_size=64 * 1024,
    files=[
        manifest.FileEntry("a/b.txt", 5, bytes(32), (bytes(32),)),
        manifest.FileEntry("c", 0, manifest.EMPTY_SHA256, ()),
    ],
    dirs=["a", "e"],
).encode()
_FRAMES = [
    wire.encode(wire.Challenge(bytes(32))) + wire.encode(wire.Accept(bytes(32))),
    wire.encode(wire.ManifestMsg(bytes(12), b"x" * 40)),
    wire.chunk_frame(3, bytes(12), b"y" * 80) + wire.encode(wire.End()),
    wire.encode(wire.Error(wire.ErrorCode.BUSY, "busy")),
    # The receiver's decoder parses FILE_UNAVAILABLE only after ACCEPT and MANIFEST.
    wire.encode(wire.Accept(bytes(32)))
    + wire.encode(wire.ManifestMsg(bytes(12), b"x" * 40))
    + wire.encode(wire.FileUnavailable(1, UnavailableReason.CHANGED))
    + wire.encode(wire.FileUnavailable(7, UnavailableReason.REMOVED)),
]
_HOP = [
    circuit_wire.encode_hop(circuit_wire.HopMessage(circuit_wire.HopType.RESERVE)),
    circuit_wire.encode_hop(
        circuit_wire.HopMessage(circuit_wire.HopType.CONNECT, peer=circuit_wire.Peer(PID, (ADDR,)))
    ),
    circuit_wire.encode_hop(
        circuit_wire.HopMessage(
            circuit_wire.HopType.STATUS,
            status=circuit_wire.Status.OK,
            reservation=circuit_wire.Reservation(2_000_000_000, (ADDR,)),
            limit=circuit_wire.Limit(120, 131072),
        )
    ),
]
_STOP = [
    circuit_wire.encode_stop(circuit_wire.StopMessage(circuit_wire.StopType.CONNECT, peer=circuit_wire.Peer(PID))),
    circuit_wire.encode_stop(circuit_wire.StopMessage(circuit_wire.StopType.STATUS, status=circuit_wire.Status.OK)),
]
_DCUTR = [
    _body(dcutr_wire.encode(dcutr_wire.HolePunch(dcutr_wire.MsgType.CONNECT, (ADDR, ADDR)))),
    _body(dcutr_wire.encode(dcutr_wire.HolePunch(dcutr_wire.MsgType.SYNC))),
]
_AUTONAT = [
    _body(autonat_wire.encode_dial(autonat_wire.Dial(PID, (ADDR,)))),
    _body(autonat_wire.encode_response(autonat_wire.DialResponse(autonat_wire.ResponseStatus.OK, "ok", addr=ADDR))),
]
_DHT = [
    dht_wire.find_node_request(b"key"),
    dht_wire.add_provider_request(b"key", PID, ["/ip4/1.2.3.4/tcp/4001"]),
]
_IDENTIFY = [pbwire.field_bytes(1, b"pk") + pbwire.field_bytes(4, ADDR) + pbwire.field_bytes(3, b"proto")]
_STUN_REQUEST = stun.binding_request()[1]
_STUN = [_STUN_REQUEST, stun.binding_response(_STUN_REQUEST, ("203.0.113.7", 4001))]


@FUZZ
@given(inputs(_FRAMES), st.integers(1, 64))
def test_transfer_frame_decoder(data: bytes, step: int) -> None:
    for accept in (wire.TO_RECEIVER, wire.TO_SHARER):
        dec = wire.FrameDecoder(accept, wire.RECEIVER_ORDER if accept is wire.TO_RECEIVER else None)
        try:
            for i in range(0, len(data), step):  # any split of the stream
                dec.feed(data[i : i + step])
        except wire.ProtocolError:
            pass
        assert dec.buffered <= max(len(data), wire.HEADER_BYTES)


@FUZZ
@given(inputs([wire.encode(wire.FileUnavailable(3, UnavailableReason.UNREADABLE))[wire.HEADER_BYTES :]], 64))
def test_file_unavailable_body(data: bytes) -> None:
    check(lambda d: wire.parse(wire.MsgType.FILE_UNAVAILABLE, d), (wire.ProtocolError,))(data)


@FUZZ
@given(inputs([_MANIFEST], 8192))
def test_manifest_decode(data: bytes) -> None:
    check(manifest.decode, (manifest.ManifestError,))(data)


@FUZZ
@given(st.one_of(st.text(max_size=600), st.binary(max_size=600).map(lambda b: b.decode("latin-1"))))
def test_share_code_parser(text: str) -> None:
    check(sharecode.parse_code, (sharecode.ShareCodeError,))(text)  # type: ignore[arg-type]


@FUZZ
@given(
    mutated(
        [
            sharecode.ShareCode(
                peer_id="12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
                addresses=("/ip4/1.2.3.4/tcp/4001",),
                encryption_key=bytes(32),
                share_code="ABCDEFGHJKMN",
            )
            .encode()
            .encode(),
            b"ABCDEFGHJKMN:" + b"A" * 43 + b"=:192.0.2.1:4001",
        ]
    )
)
def test_share_code_parser_mutations(raw: bytes) -> None:
    check(sharecode.parse_code, (sharecode.ShareCodeError,))(raw.decode("latin-1"))  # type: ignore[arg-type]


@FUZZ
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_short_code_parser(text: str) -> None:
    check(short_code.parse_short_code, (sharecode.ShareCodeError,))(text)  # type: ignore[arg-type]


@FUZZ
@given(mutated([b"4127-acid-zoom-yoga", b"9999 yodel yoga zoom"]))
def test_short_code_parser_mutations(raw: bytes) -> None:
    check(short_code.parse_short_code, (sharecode.ShareCodeError,))(raw.decode("latin-1"))  # type: ignore[arg-type]


_SHORTCODE = [
    _body(
        shortcode_wire.encode(shortcode_wire.ShortCodeMsg(shortcode_wire.MsgType.REPLY, pake=b"B" * 33, box=b"x" * 40))
    ),
    _body(shortcode_wire.encode(shortcode_wire.ShortCodeMsg(shortcode_wire.MsgType.CONFIRM, mac=b"m" * 32))),
]


@FUZZ
@given(inputs(_SHORTCODE))
def test_shortcode_decoder(data: bytes) -> None:
    check(shortcode_wire.decode, (shortcode_wire.WireError,))(data)


@FUZZ
@given(inputs(_HOP))
def test_relay_hop_decoder(data: bytes) -> None:
    check(circuit_wire.decode_hop, (circuit_wire.WireError,))(data)


@FUZZ
@given(inputs(_STOP))
def test_relay_stop_decoder(data: bytes) -> None:
    check(circuit_wire.decode_stop, (circuit_wire.WireError,))(data)


@FUZZ
@given(inputs(_DCUTR))
def test_dcutr_decoder(data: bytes) -> None:
    check(dcutr_wire.decode, (dcutr_wire.WireError,))(data)


@FUZZ
@given(inputs(_AUTONAT))
def test_autonat_decoder(data: bytes) -> None:
    check(autonat_wire.decode_message, (autonat_wire.WireError,))(data)


@FUZZ
@given(inputs(_DHT), st.integers(0, 5))
def test_dht_answer_decoder(data: bytes, expect: int) -> None:
    check(lambda d: dht_wire.parse_answer(d, expect=expect, sender=PID, verify_for=PID), (dht_wire.WireError,))(data)


@FUZZ
@given(inputs(_IDENTIFY))
def test_identify_observed_address(data: bytes) -> None:
    got = observed_addr_field(data)
    assert got is None or isinstance(got, bytes)


@FUZZ
@given(inputs(_STUN, 1024))
def test_stun_binding_response(data: bytes) -> None:
    check(lambda d: stun.parse_binding_response(d, d[8:20]), (stun.StunError,))(data)


@FUZZ
@given(inputs([pbwire.frame(b"x" * 10), pbwire.frame(_DHT[1])]))
def test_varint_framing(data: bytes) -> None:
    try:
        got = pbwire.try_unframe(data, 4096)
    except pbwire.PbError:
        return
    if got is not None:
        body, used = got
        assert len(body) <= 4096 and used <= len(data)


def test_the_fuzzers_can_fail() -> None:
    """A decoder that leaks a foreign exception is caught by ``check``."""

    def leaky(data: bytes) -> object:
        return data[10]

    with pytest.raises(IndexError):
        check(leaky, (ValueError,))(b"short")
