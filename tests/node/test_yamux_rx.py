"""node._libp2p_yamux_rx (P10): plain DATA frames delivered in place.

The fast path must deliver exactly what upstream's ``handle_incoming``
would for a plain DATA frame, and leave every other frame -- and every
plain frame it cannot prove normal -- to upstream, in order. Checked on
fakes frame by frame (one case per reason to step aside, and a
differential run against an unlinked session reading the same frames), and
on real hosts: the path is taken and the bytes arrive intact.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
from typing import Any

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.stream_muxer.yamux import yamux

from p2pshare.node import _libp2p_patches as P
from p2pshare.node import _libp2p_yamux_rx as R
from p2pshare.node._libp2p_yamux_rx import FLOW_CONTROL_SLACK
from p2pshare.node.host import open_host
from tests.node._fake_session import fake_session

P.apply()
HDR = struct.Struct(yamux.YAMUX_HEADER_FORMAT)


def frame(typ: int, flags: int, sid: int, body: bytes = b"", length: int | None = None) -> bytes:
    return HDR.pack(0, typ, flags, sid, len(body) if length is None else length) + body


def data(sid: int, body: bytes, flags: int = 0) -> bytes:
    return frame(yamux.TYPE_DATA, flags, sid, body)


class FakeStream:
    def __init__(self, window: int = 1 << 20) -> None:
        self.recv_window = window
        self.closed = False


class FakeMux:
    def __init__(self, session: Any, sids: tuple[int, ...] = (1, 3)) -> None:
        self.secured_conn = session
        self.streams = {sid: FakeStream() for sid in sids}
        self.stream_buffers = {sid: bytearray() for sid in sids}
        self.stream_events = {sid: trio.Event() for sid in sids}
        self.streams_lock = trio.Lock()
        self.event_shutting_down = trio.Event()


def current(s: Any) -> bytes:
    d = s.__dict__
    return bytes(d.get("_p2ps_cur", b""))[d.get("_p2ps_pos", 0) :]


def test_plain_frames_are_delivered_until_the_first_other_frame() -> None:
    a, b, c = os.urandom(100), os.urandom(65_000), os.urandom(5)
    update = frame(yamux.TYPE_WINDOW_UPDATE, 0, 1, length=4096)
    s = fake_session([])
    s._p2ps_cur, s._p2ps_pos = data(1, a) + data(3, b) + update + data(1, c), 0
    mux = FakeMux(s)
    R.deliver_plain_data(s, mux)
    assert mux.stream_buffers[1] == a and mux.stream_buffers[3] == b
    assert mux.streams[1].recv_window == (1 << 20) - 100 and mux.streams[3].recv_window == (1 << 20) - 65_000
    assert mux.stream_events[1].is_set() and mux.stream_events[3].is_set()
    assert current(s) == update + data(1, c)  # upstream reads the rest


def test_a_message_of_plain_frames_only_is_consumed_whole() -> None:
    s = fake_session([])
    s._p2ps_cur, s._p2ps_pos = data(1, b"x" * 10) + data(1, b"y" * 20), 0
    mux = FakeMux(s)
    R.deliver_plain_data(s, mux)
    assert mux.stream_buffers[1] == b"x" * 10 + b"y" * 20 and current(s) == b""
    assert s._p2ps_cur == b"" and s._p2ps_pos == 0


def _closed(mux: FakeMux) -> None:
    mux.streams[1].closed = True


def _no_credit(mux: FakeMux) -> None:
    mux.streams[1].recv_window = 10


def _held(mux: FakeMux) -> None:
    mux.streams_lock.acquire_nowait()


def _shutting(mux: FakeMux) -> None:
    mux.event_shutting_down.set()


@pytest.mark.parametrize(
    ("head", "setup"),
    [
        (data(1, b"z" * 50, flags=yamux.FLAG_FIN), None),  # FIN: upstream marks the stream
        (data(1, b"z" * 50, flags=yamux.FLAG_SYN), None),  # SYN: a new stream
        (data(7, b"z" * 50), None),  # unknown stream: upstream drops it
        (data(1, b"z" * 50)[:30], None),  # body continues in the next message
        (data(1, b"z" * 50)[:7], None),  # even the header does
        (frame(yamux.TYPE_DATA, 0, 1, length=50), None),  # claims a body it does not carry
        (frame(yamux.TYPE_PING, yamux.FLAG_SYN, 0, length=9), None),
        (data(1, b"z" * 50), _closed),
        (data(1, b"z" * (10 + FLOW_CONTROL_SLACK + 1)), _no_credit),  # overrun: upstream closes
        (data(1, b"z" * 50), _held),
        (data(1, b"z" * 50), _shutting),
    ],
    ids=[
        "fin",
        "syn",
        "unknown-stream",
        "split-body",
        "split-header",
        "short-body",
        "ping",
        "closed-stream",
        "over-window",
        "lock-held",
        "shutting-down",
    ],
)
async def test_anything_but_a_normal_plain_frame_is_left_for_upstream(head: bytes, setup: Any) -> None:
    s = fake_session([])
    s._p2ps_cur, s._p2ps_pos = b"\x00" * 3 + head, 3  # also: a message read from an offset
    mux = FakeMux(s)
    if setup is not None:
        setup(mux)
    R.deliver_plain_data(s, mux)
    assert current(s) == head
    assert all(not buf for buf in mux.stream_buffers.values())
    assert not any(ev.is_set() for ev in mux.stream_events.values())


def test_beyond_credit_even_within_the_slack_is_left_for_upstream() -> None:
    """Only frames within their credit are plain: one past it goes through
    upstream's path, whose ``StreamBuffer.extend`` counts it against the
    stream's slack (spent once, not granted again per frame)."""
    head = data(1, b"w" * 11)
    s = fake_session([])
    s._p2ps_cur, s._p2ps_pos = head, 0
    mux = FakeMux(s)
    _no_credit(mux)
    R.deliver_plain_data(s, mux)
    assert current(s) == head and not mux.stream_buffers[1] and mux.streams[1].recv_window == 10


def test_exactly_the_credit_is_plain() -> None:
    body = b"w" * 10
    s = fake_session([])
    s._p2ps_cur, s._p2ps_pos = data(1, body), 0
    mux = FakeMux(s)
    _no_credit(mux)
    R.deliver_plain_data(s, mux)
    assert mux.stream_buffers[1] == body and mux.streams[1].recv_window == 0


def _random_frames(rng: random.Random) -> list[bytes]:
    frames = []
    for _ in range(300):
        kind = rng.random()
        sid = rng.choice([1, 3, 5])  # 5 is unknown to the muxer
        if kind < 0.7:
            frames.append(data(sid, os.urandom(rng.choice([0, 1, 11, 12, 13, 500, 65_000]))))
        elif kind < 0.8:
            frames.append(data(sid, os.urandom(rng.choice([3, 40])), flags=yamux.FLAG_FIN))
        else:
            frames.append(frame(yamux.TYPE_WINDOW_UPDATE, 0, sid, length=rng.randrange(1 << 16)))
    return frames


def _messages(stream: bytes, rng: random.Random) -> list[bytes]:
    out, pos = [], 0
    while pos < len(stream):
        size = rng.choice([7, 12, 30, 65_535, 65_535, 65_535, 100_000])
        out.append(stream[pos : pos + size])
        pos += size
    return out


async def _drive(s: Any, mux: FakeMux | None) -> tuple[dict[int, bytes], list[tuple[int, ...]]]:
    """What a ``handle_incoming`` reading headers through ``yamux.read_exactly``
    and bodies through ``_read_data_body`` sees: each known stream's bytes
    (upstream's DATA branch appends a body to the stream's buffer, as the
    fast path does) and every header left to upstream's code, in order."""
    buffers = mux.stream_buffers if mux is not None else {1: bytearray(), 3: bytearray()}
    seen: list[tuple[int, ...]] = []
    body_reader = type("M", (), {"secured_conn": s})()
    while True:
        try:
            header = await yamux.read_exactly(s, yamux.HEADER_SIZE)
        except Exception:
            break
        fields = HDR.unpack(header)
        seen.append(fields)
        _, typ, _, sid, length = fields
        if typ == yamux.TYPE_DATA and length:
            body = await R.read_data_body(body_reader, length)
            if sid in buffers:
                buffers[sid] += body
    return {sid: bytes(v) for sid, v in buffers.items()}, seen


def _plain(fields: tuple[int, ...]) -> bool:
    _, typ, flags, sid, _ = fields
    return typ == yamux.TYPE_DATA and not flags and sid in (1, 3)


@pytest.mark.parametrize("seed", range(5))
async def test_same_bytes_and_order_as_upstream_path(seed: int) -> None:
    rng = random.Random(seed)
    msgs = _messages(b"".join(_random_frames(rng)), rng)
    plain_got, plain_seen = await _drive(fake_session(msgs), None)  # no muxer linked: upstream's reads

    s = fake_session(msgs)
    mux = FakeMux(s)
    for stream in mux.streams.values():
        stream.recv_window = 1 << 30
    R.link_session(mux)
    fast_got, fast_seen = await _drive(s, mux)
    assert fast_got == plain_got  # each stream: the same bytes in the same order
    # Upstream saw a subsequence of the same headers: all but plain frames
    # the fast path delivered, and every non-plain one.
    assert [f for f in fast_seen if not _plain(f)] == [f for f in plain_seen if not _plain(f)]
    remaining = iter(plain_seen)
    assert all(any(f == g for g in remaining) for f in fast_seen)
    assert sum(map(_plain, fast_seen)) < sum(map(_plain, plain_seen)) // 2  # the fast path took most


async def test_real_hosts_take_the_fast_path_and_deliver_intact(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    original = R.deliver_plain_data

    def counting(s: Any, mux: Any) -> None:
        nonlocal calls
        before = s.__dict__.get("_p2ps_pos", 0), s.__dict__.get("_p2ps_cur", b"")
        original(s, mux)
        if (s.__dict__.get("_p2ps_pos", 0), s.__dict__.get("_p2ps_cur", b"")) != before:
            calls += 1

    monkeypatch.setattr(R, "deliver_plain_data", counting)
    payload = os.urandom(24 << 20)
    received = hashlib.sha256()
    done = trio.Event()

    async def sink(stream: Any) -> None:
        while chunk := await stream.read(1 << 20):
            received.update(chunk)
        done.set()

    async with open_host(create_new_key_pair()) as a, open_host(create_new_key_pair()) as b:
        b.set_stream_handler("/t/sink", sink)
        await a.connect(b.peer_id, b.listen_addrs(), timeout=5)
        stream = await a.open_stream(b.peer_id, "/t/sink")
        with trio.fail_after(60):
            await stream.write(payload)
            await stream.close_write()
            await done.wait()
    assert received.digest() == hashlib.sha256(payload).digest()
    assert calls > 100  # most of the 24 MiB went through the fast path
