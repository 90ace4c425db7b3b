"""node._libp2p_streambuf: a yamux stream's buffer kept as pieces.

It must answer every operation yamux makes exactly as the ``bytearray`` it
replaces (a differential run of random operations), refuse data beyond the
window, copy nothing a read does not need, and -- fed by P10 -- never let
a small body pin a large Noise message.
"""

from __future__ import annotations

import os
import random
import struct

import pytest
import trio
from libp2p.stream_muxer.yamux import yamux

from p2pshare.node import _libp2p_yamux_rx as R
from p2pshare.node._libp2p_streambuf import StreamBuffer, YamuxFlowControlViolation
from p2pshare.node._libp2p_yamux_rx import FLOW_CONTROL_SLACK
from tests.node._fake_session import fake_session


class _Stream:
    def __init__(self, window: int) -> None:
        self.recv_window = window
        self.closed = False


class _Conn:
    def __init__(self, window: int = 1 << 30) -> None:
        self.streams = {1: _Stream(window)}
        self.stream_buffers: dict[int, StreamBuffer] = {}
        self.stream_events = {1: trio.Event()}
        self.streams_lock = trio.Lock()
        self.event_shutting_down = trio.Event()
        self.peer_id = "peer"
        self.secured_conn = None
        self.stream_buffers[1] = StreamBuffer(self, 1)


@pytest.mark.parametrize("seed", range(12))
def test_same_answers_as_a_bytearray(seed: int) -> None:
    rng = random.Random(seed)
    buf = StreamBuffer(_Conn(), 1)
    ref = bytearray()
    for _ in range(400):
        op = rng.random()
        if op < 0.45:
            data = rng.randbytes(rng.choice((0, 1, 7, 100, 4096, 65_000)))
            kind = rng.randrange(3)
            piece = (
                data
                if kind == 0
                else memoryview(b"xx" + data + b"yy")[2 : 2 + len(data)]
                if kind == 1
                else bytearray(data)
            )
            buf.extend(piece)
            ref.extend(data)
        elif op < 0.6:
            assert bytes(buf) == bytes(ref)
            buf.clear()
            ref.clear()
        elif op < 0.7:
            n = rng.randrange(0, len(ref) + 10)
            assert buf[:n] == bytes(ref[:n])
            del buf[:n]
            del ref[:n]
        elif op < 0.8:
            n = rng.randrange(1, len(ref) + 10)
            pieces = buf.take_pieces(n)
            assert all(type(p) in (bytes, memoryview) and memoryview(p).readonly for p in pieces)
            assert b"".join(pieces) == bytes(ref[:n])
            del ref[:n]
        else:
            n = rng.randrange(0, len(ref) + 10)
            assert bytes(buf[:n]) == bytes(ref[:n])  # a look, nothing consumed
        assert len(buf) == len(ref) and bool(buf) == bool(ref)
    assert bytes(buf) == bytes(ref)


def test_pieces_are_frozen_copies_of_anything_writable() -> None:
    buf = StreamBuffer(_Conn(), 1)
    writable = bytearray(os.urandom(10_000))
    buf.extend(writable)
    buf.extend(memoryview(writable))
    expected = bytes(writable) * 2
    writable[:] = bytes(len(writable))  # the sender of a view changes its buffer afterwards
    assert b"".join(buf.take_pieces(1 << 20)) == expected


def test_small_bodies_are_gathered_not_kept_one_object_each() -> None:
    # A peer sending its whole window in 1-byte frames must not cost an
    # object per byte.
    buf = StreamBuffer(_Conn(), 1)
    data = os.urandom(200_000)
    for i in range(len(data)):
        buf.extend(data[i : i + 1])
    assert len(buf._pieces) <= len(data) // 60_000 + 1
    got = buf.take_pieces(70_000) + buf.take_pieces(1 << 20)
    assert b"".join(got) == data and len(buf) == 0


def test_consuming_reads_do_not_join_what_they_drop() -> None:
    buf = StreamBuffer(_Conn(), 1)
    first, second = os.urandom(65_000), os.urandom(65_000)
    buf.extend(first)
    buf.extend(second)
    del buf[:70_000]  # upstream's ``del buffer[:n]`` after it read ``buffer[:n]``
    [rest] = buf._pieces
    assert type(rest) is memoryview and rest.obj is second and bytes(rest) == second[5_000:]


def test_only_prefix_slices() -> None:
    buf = StreamBuffer(_Conn(), 1)
    buf.extend(b"abcdef")
    assert buf[:-2] == b"abcd" and buf[:] == b"abcdef" and buf[0:3] == b"abc"
    for key in (slice(1, 3), slice(None, None, 2)):
        with pytest.raises(TypeError):
            buf[key]


def test_a_read_of_one_whole_piece_is_that_piece() -> None:
    buf = StreamBuffer(_Conn(), 1)
    piece = os.urandom(65_000)
    buf.extend(piece)
    assert bytes(buf) is piece  # no copy
    buf.extend(b"more")
    assert buf[:65_000] is piece


def test_the_slack_is_spent_once_not_granted_again_with_each_frame() -> None:
    conn = _Conn(window=0)
    buf = conn.stream_buffers[1]
    buf.extend(b"x" * (FLOW_CONTROL_SLACK // 2))
    buf.extend(b"x" * (FLOW_CONTROL_SLACK // 2))  # the whole slack, in two frames
    conn.streams[1].recv_window = 1000  # credit granted again: data within it is fine
    buf.extend(b"y" * 1000)
    conn.streams[1].recv_window = 0
    with pytest.raises(YamuxFlowControlViolation, match=f"{FLOW_CONTROL_SLACK + 1} beyond"):
        buf.extend(b"z")  # but the slack does not come back with it
    assert conn.event_shutting_down.is_set()
    assert len(buf) == FLOW_CONTROL_SLACK + 1000


def test_data_beyond_the_window_closes_the_connection() -> None:
    conn = _Conn(window=1000)
    buf = conn.stream_buffers[1]
    buf.extend(b"x" * (1000 + FLOW_CONTROL_SLACK))  # in flight when credit crossed
    with pytest.raises(YamuxFlowControlViolation):
        buf.extend(b"x" * (1001 + FLOW_CONTROL_SLACK))
    assert conn.event_shutting_down.is_set()


def test_p10_keeps_a_large_body_as_a_view_and_copies_a_small_one() -> None:
    """A 60 KiB body of a 64 KiB message is kept in place; a 1 KiB body in a
    message padded with other frames is copied, so it pins 1 KiB, not 64."""
    header = struct.Struct(yamux.YAMUX_HEADER_FORMAT)

    def data(body: bytes) -> bytes:
        return header.pack(0, yamux.TYPE_DATA, 0, 1, len(body)) + body

    conn = _Conn()
    session = fake_session([])
    big = os.urandom(60_000)
    session._p2ps_cur, session._p2ps_pos = data(big), 0
    R.deliver_plain_data(session, conn)
    small = os.urandom(1024)
    ping = header.pack(0, yamux.TYPE_PING, 0, 0, 1)
    message = data(small) + ping * 5000  # the rest is for upstream's path
    session._p2ps_cur, session._p2ps_pos = message, 0
    R.deliver_plain_data(session, conn)
    pieces = list(conn.stream_buffers[1]._pieces)
    assert [type(p) for p in pieces] == [memoryview, bytearray]  # a small body: copied
    assert pieces[0].obj is not None and len(pieces[0].obj) == len(data(big))
    assert bytes(conn.stream_buffers[1]) == big + small
