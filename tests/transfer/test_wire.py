"""Framing: every message round-trips; bad frames are ProtocolErrors, early."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pshare.transfer import wire
from p2pshare.transfer.errors import ProtocolError, UnavailableReason
from p2pshare.transfer.gathered import Gathered

ALL = frozenset(wire.MsgType)
MESSAGES: list[wire.Message] = [
    wire.Hello(b"i" * 16, b"n" * 32),
    wire.Challenge(b"c" * 32),
    wire.Proof(b"p" * 32),
    wire.Accept(b"a" * 32),
    wire.ManifestMsg(b"m" * 12, b"x" * 100),
    wire.Want(((0, 5), (7, 8))),
    wire.Want(()),
    wire.Chunk(2**40, b"n" * 12, b"c" * 1000),
    wire.End(),
    wire.Done(),
    wire.Error(wire.ErrorCode.BUSY, "try later"),
    wire.FileUnavailable(2**32 - 1, UnavailableReason.CHANGED),
    wire.FileUnavailable(0, UnavailableReason.UNREADABLE),
]


def test_round_trip_byte_by_byte() -> None:
    stream = b"".join(wire.encode(m) for m in MESSAGES)
    dec = wire.FrameDecoder(ALL)
    out: list[wire.Message] = []
    for i in range(len(stream)):
        out.extend(dec.feed(stream[i : i + 1]))
    assert out == MESSAGES
    assert dec.buffered == 0
    assert wire.FrameDecoder(ALL).feed(stream) == MESSAGES


def test_unknown_type() -> None:
    with pytest.raises(ProtocolError, match="unknown message type"):
        wire.FrameDecoder(ALL).feed(struct.pack(">BI", 99, 0))


def test_type_not_for_this_role() -> None:
    manifest = wire.encode(wire.ManifestMsg(b"m" * 12, b"x" * 16))
    with pytest.raises(ProtocolError, match="unexpected message type MANIFEST"):
        wire.FrameDecoder(wire.TO_SHARER).feed(manifest)
    with pytest.raises(ProtocolError, match="unexpected message type HELLO"):
        wire.FrameDecoder(wire.TO_RECEIVER).feed(wire.encode(MESSAGES[0]))


@pytest.mark.parametrize("kind", list(wire.MsgType))
def test_oversize_rejected_from_header_alone(kind: wire.MsgType) -> None:
    header = struct.pack(">BI", kind, wire.MAX_BODY[kind] + 1)
    with pytest.raises(ProtocolError, match="too large"):
        wire.FrameDecoder(ALL).feed(header)


def test_chunk_limit_tightens_with_chunk_size() -> None:
    dec = wire.FrameDecoder(ALL)
    dec.set_chunk_size(64 * 1024)
    dec.feed(struct.pack(">BI", wire.MsgType.CHUNK, 64 * 1024 + wire.CHUNK_OVERHEAD))
    dec2 = wire.FrameDecoder(ALL)
    dec2.set_chunk_size(64 * 1024)
    with pytest.raises(ProtocolError, match="too large"):
        dec2.feed(struct.pack(">BI", wire.MsgType.CHUNK, 64 * 1024 + wire.CHUNK_OVERHEAD + 1))


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (wire.MsgType.HELLO, b"\x01" + b"x" * 40),
        (wire.MsgType.CHALLENGE, b"x" * 31),
        (wire.MsgType.PROOF, b""),
        (wire.MsgType.ACCEPT, b"x" * 31),
        (wire.MsgType.MANIFEST, b"x" * 27),
        (wire.MsgType.WANT, b"\x00\x00"),
        (wire.MsgType.WANT, struct.pack(">I", 2) + b"\x00" * 16),
        (wire.MsgType.CHUNK, b"x" * 35),
        (wire.MsgType.ERROR, b""),
        (wire.MsgType.FILE_UNAVAILABLE, b"\x00\x00\x00\x01"),
    ],
)
def test_malformed_bodies(kind: wire.MsgType, body: bytes) -> None:
    with pytest.raises(ProtocolError, match="malformed"):
        wire.FrameDecoder(ALL).feed(struct.pack(">BI", kind, len(body)) + body)


@pytest.mark.parametrize("reason", [0, 4, 255])
def test_file_unavailable_with_an_unknown_reason(reason: int) -> None:
    body = struct.pack(">IB", 1, reason)
    with pytest.raises(ProtocolError, match="unknown FILE_UNAVAILABLE reason"):
        wire.FrameDecoder(ALL).feed(struct.pack(">BI", wire.MsgType.FILE_UNAVAILABLE, len(body)) + body)


def test_file_unavailable_only_to_the_receiver_and_only_after_the_manifest() -> None:
    """A file index means nothing before the manifest that numbers the files."""
    notice = wire.encode(wire.FileUnavailable(0, UnavailableReason.CHANGED))
    with pytest.raises(ProtocolError, match="unexpected message type FILE_UNAVAILABLE"):
        wire.FrameDecoder(wire.TO_SHARER).feed(notice)
    accept = wire.encode(wire.Accept(b"a" * 32))
    with pytest.raises(ProtocolError, match="FILE_UNAVAILABLE message before MANIFEST"):
        wire.FrameDecoder(wire.TO_RECEIVER, wire.RECEIVER_ORDER).feed(accept + notice)
    manifest = wire.encode(wire.ManifestMsg(b"m" * 12, b"x" * 16))
    got = wire.FrameDecoder(wire.TO_RECEIVER, wire.RECEIVER_ORDER).feed(accept + manifest + notice)
    assert got[-1] == wire.FileUnavailable(0, UnavailableReason.CHANGED)


def test_end_with_body_is_oversize() -> None:
    with pytest.raises(ProtocolError):
        wire.FrameDecoder(ALL).feed(struct.pack(">BI", wire.MsgType.END, 1) + b"x")


def test_error_text_is_sanitised_and_bounded() -> None:
    body = bytes([wire.ErrorCode.INTERNAL]) + "evil\x1b[2J\u202enext\nline".encode() + b"\xff"
    (msg,) = wire.FrameDecoder(ALL).feed(struct.pack(">BI", wire.MsgType.ERROR, len(body)) + body)
    assert isinstance(msg, wire.Error)
    assert msg.message.isprintable() and "\x1b" not in msg.message and "\u202e" not in msg.message
    long = wire.encode(wire.Error(1, "\u00e9" * 5000))
    assert len(long) <= wire.HEADER_BYTES + wire.MAX_ERROR_BODY
    (back,) = wire.FrameDecoder(ALL).feed(long)
    assert isinstance(back, wire.Error) and len(back.message) <= 203


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_garbage_only_raises_protocol_error(pieces: list[bytes]) -> None:
    dec = wire.FrameDecoder(wire.TO_RECEIVER)
    try:
        for piece in pieces:
            dec.feed(piece)
    except ProtocolError:
        pass


def test_chunk_frames_split_anywhere() -> None:
    """CHUNK bodies are assembled straight from the fed pieces, wherever they split."""
    import random

    rng = random.Random(7)
    msgs: list[wire.Message] = [
        wire.Chunk(i, bytes([i]) * 12, os.urandom(n)) for i, n in enumerate([16, 17, 70_000, 1 << 20, 16])
    ]
    msgs.insert(2, wire.End())
    stream = b"".join(wire.encode(m) for m in msgs)
    for _ in range(20):
        dec = wire.FrameDecoder(ALL)
        out: list[wire.Message] = []
        pos = 0
        while pos < len(stream):
            step = rng.choice([1, 5, 24, 25, 26, 1000, 65536, 300_000])
            out.extend(dec.feed(memoryview(stream)[pos : pos + step]))
            pos += step
        assert out == msgs and dec.buffered == 0


def _as_noise_messages(stream: bytes, size: int = 65_519) -> list[bytes]:
    """``stream`` cut like decrypted Noise messages: separate ``bytes`` objects."""
    return [stream[i : i + size] for i in range(0, len(stream), size)]


def test_a_chunk_fed_as_messages_is_kept_as_views_of_them() -> None:
    body = os.urandom(1 << 20)
    msgs: list[wire.Message] = [wire.Chunk(1, b"n" * 12, body), wire.Chunk(2, b"m" * 12, os.urandom(300)), wire.End()]
    pieces = _as_noise_messages(b"".join(wire.encode(m) for m in msgs))
    dec = wire.FrameDecoder(ALL)
    out = dec.feed_all([memoryview(p) for p in pieces])
    assert out == msgs and dec.buffered == 0
    big = out[0]
    assert isinstance(big, wire.Chunk) and isinstance(big.ciphertext, Gathered)
    viewed = [p for p in big.ciphertext.pieces if type(p) is memoryview]
    # Every whole message is a view of it (no copy); only the two messages
    # the chunk shares with its neighbours' frames may be copied.
    assert sum(len(p) for p in viewed) >= len(body) - 2 * 65_519
    assert all(any(p.obj is q for q in pieces) for p in viewed)
    # The small chunk lies in a message it is a sliver of: copied, never a view.
    small = out[1]
    assert isinstance(small, wire.Chunk) and type(small.ciphertext) is not memoryview


def test_a_small_body_never_pins_a_large_piece() -> None:
    msgs: list[wire.Message] = [wire.Chunk(i, b"n" * 12, os.urandom(40)) for i in range(2000)]
    fed = b"".join(wire.encode(m) for m in msgs)
    out = wire.FrameDecoder(ALL).feed(fed)
    assert out == msgs
    for m in out:
        assert isinstance(m, wire.Chunk)
        assert not (type(m.ciphertext) is memoryview and m.ciphertext.obj is fed)


def test_a_writable_feed_is_copied() -> None:
    body = os.urandom(200_000)
    fed = bytearray(wire.encode(wire.Chunk(0, b"n" * 12, body)))
    [chunk] = wire.FrameDecoder(ALL).feed(fed)
    fed[:] = bytes(len(fed))  # the caller reuses its buffer
    assert isinstance(chunk, wire.Chunk) and chunk.ciphertext == body


def test_a_body_fed_a_byte_at_a_time_is_a_few_buffers() -> None:
    body = os.urandom(150_000)
    stream = wire.encode(wire.Chunk(0, b"n" * 12, body))
    dec = wire.FrameDecoder(ALL)
    out: list[wire.Message] = []
    for i in range(len(stream)):
        out.extend(dec.feed(stream[i : i + 1]))
    [chunk] = out
    assert isinstance(chunk, wire.Chunk) and chunk.ciphertext == body
    assert isinstance(chunk.ciphertext, Gathered) and len(chunk.ciphertext.pieces) <= 3


def test_a_whole_chunk_in_one_piece_gets_every_check_of_the_general_path() -> None:
    """The decoder's fast path (a whole CHUNK in one piece) keeps the order,
    size and role rules: each bad frame fails the same whole or in bytes."""
    accept = wire.encode(wire.Accept(b"a" * 32))
    manifest = wire.encode(wire.ManifestMsg(b"m" * 12, b"x" * 16))
    chunk = wire.encode(wire.Chunk(3, b"n" * 12, b"c" * 100))
    too_short = wire.frame(wire.MsgType.CHUNK, b"\x00" * (wire.CHUNK_OVERHEAD - 1))
    cases = [
        (wire.TO_RECEIVER, wire.RECEIVER_ORDER, chunk, "CHUNK message before ACCEPT"),
        (wire.TO_SHARER, None, chunk, "unexpected message type CHUNK"),
        (wire.TO_RECEIVER, None, too_short, "malformed|CHUNK"),
    ]
    for accept_kinds, order, fed, error in cases:
        for pieces in ([fed], [fed[i : i + 1] for i in range(len(fed))]):
            dec = wire.FrameDecoder(accept_kinds, order)
            with pytest.raises(ProtocolError, match=error):
                for piece in pieces:
                    dec.feed(piece)
    dec = wire.FrameDecoder(wire.TO_RECEIVER, wire.RECEIVER_ORDER)
    dec.set_chunk_size(50)
    with pytest.raises(ProtocolError, match="CHUNK message too large"):
        dec.feed(accept + manifest + chunk)
    got = wire.FrameDecoder(wire.TO_RECEIVER, wire.RECEIVER_ORDER).feed(accept + manifest + chunk)
    assert got[-1] == wire.Chunk(3, b"n" * 12, b"c" * 100)


def test_a_large_want_costs_about_its_own_size_once_parsed() -> None:
    """A 1 MiB WANT (65,536 ranges) parsed into tuples held ~12 MB of the
    sharer's memory per session (a hostile-peer review, stop 44); kept as
    its bytes it holds ~1 MiB, and reads the same."""
    import tracemalloc

    ranges = tuple((4 * i, 4 * i + 1) for i in range(65_536))
    body = wire.encode(wire.Want(ranges))[wire.HEADER.size :]
    tracemalloc.start()
    try:
        parsed = wire.parse(wire.MsgType.WANT, body)
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(parsed, wire.Want)
    assert held < 1.5 * len(body), held
    assert parsed == wire.Want(ranges) and tuple(parsed.ranges) == ranges
    assert parsed.ranges[-1] == ranges[-1] and parsed.ranges[1:3] == ranges[1:3] and len(parsed.ranges) == 65_536
