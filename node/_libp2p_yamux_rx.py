"""The yamux receive path: frame headers and bodies read from the Noise
session's current message, and plain DATA frames delivered without
upstream's per-frame work (replacement functions, issue 12).

Registered, fingerprinted and applied in ``_libp2p_patches.PATCHES``:

- P4 ``read_exactly`` without copying a complete first read;
- P5 a DATA body that is already decrypted is read without a deadline;
- P10 ``yamux.read_exactly``, which upstream's ``Yamux.handle_incoming`` calls
  for nothing but the next frame header, first delivers every *plain* DATA
  frame the session's current Noise message holds whole, then returns the
  first header it leaves to upstream.

Why P10: with our writer each 64 KiB Noise message carries one DATA frame,
and upstream spends far more per frame than the crypto costs (logging
f-strings formatted whether or not debug is on, two lock round trips, a
dict of type names, a copy of the body, a trio checkpoint or three): about
1 s of CPU per GiB received. A plain frame -- type DATA, no flags, for an
open stream that has the credit for it, its body whole in the message -- has
one correct handling: append the body to the stream's buffer, debit the
receive window, wake the reader. We do exactly that, synchronously (no
other task can run in between, so ``streams_lock`` is not needed; we step
aside if someone holds it). Every other frame -- SYN/ACK/FIN/RST, window
updates, pings, GO_AWAY, a frame for an unknown or closed stream, one that
overruns its window, one split across messages -- goes to upstream's code
unchanged, so its behaviour (and the flow-control violation check in
``_libp2p_rcmgr``) stays the one place those cases are decided.
"""

from __future__ import annotations

import functools
import struct
import weakref
from typing import Any

import trio
from libp2p.io import utils as io_utils
from libp2p.io.exceptions import IncompleteReadError
from libp2p.security import secure_session
from libp2p.stream_muxer.yamux import yamux

from ._libp2p_noise_rx import _noise_read_msg, take_ready_msg

__all__ = ["read_exactly", "read_data_body", "next_frame_header", "link_session", "deliver_plain_data"]
__all__ += ["FLOW_CONTROL_SLACK"]

#: Bytes a peer may send beyond the window we granted, over a stream's whole
#: life, before we call it a violation and close the connection: one Noise
#: message's worth (``StreamBuffer.extend`` keeps the count).
FLOW_CONTROL_SLACK = 64 * 1024

HEADER_SIZE: int = int(yamux.HEADER_SIZE)
_HEADER = struct.Struct(yamux.YAMUX_HEADER_FORMAT)
_TYPE_DATA: int = int(yamux.TYPE_DATA)
_MAX_BODY: int = int(yamux.MAX_WINDOW_SIZE)


# -- P4: read_exactly without copying a complete first read -------------------
# Upstream libp2p.io.utils.read_exactly always copies into a bytearray and
# back to bytes, even when the first read already returned n bytes (the
# usual case for yamux headers and bodies). Same semantics otherwise.


async def read_exactly(reader: Any, n: int, retry_count: int = io_utils.DEFAULT_RETRY_READ_COUNT) -> bytes:
    first = await reader.read(n)
    if len(first) == n:
        return bytes(first)
    buffer = bytearray(first)
    for _ in range(retry_count):
        if len(buffer) >= n:
            return bytes(buffer)
        buffer.extend(await reader.read(n - len(buffer)))
    if len(buffer) >= n:
        return bytes(buffer)
    raise IncompleteReadError(
        f"Connection closed during read operation: expected {n} bytes but received {len(buffer)} bytes",
        expected_bytes=n,
        received_bytes=len(buffer),
    )


# -- P5: no deadline for a frame body that is already here --------------------
# Upstream Yamux._read_data_body wraps every DATA body read in
# trio.fail_after (a cancel scope per frame). When the decrypted body is
# already buffered in the session (the usual case) no wait can happen, so we
# read it directly; otherwise under upstream's deadline. Upstream's own body
# reads through ``yamux.read_exactly``, which P10 reserves for headers, so
# its two lines are restated here.


async def read_data_body(self: Any, length: int) -> bytes:
    conn = self.secured_conn
    d = getattr(conn, "__dict__", {})
    cur = d.get("_p2ps_cur")
    if cur is not None and len(cur) - d.get("_p2ps_pos", 0) >= length:
        return await read_exactly(conn, length)
    with trio.fail_after(yamux._yamux_data_read_timeout()):
        return await read_exactly(conn, length)


# -- P10: plain DATA frames delivered in place --------------------------------


def link_session(mux: Any) -> None:
    """Let P10 find ``mux`` from its session (called as each Yamux is built).

    Only a :class:`SecureSession` whose ``read`` is our P3 keeps the current
    message where P10 looks for it; any other connection keeps upstream's
    path. A weak reference: the session must not keep its muxer alive."""
    conn = mux.secured_conn
    if isinstance(conn, secure_session.SecureSession) and getattr(type(conn).read, "__name__", "") == "_session_read":
        conn.__dict__["_p2ps_mux"] = weakref.ref(mux)
        rw = getattr(conn, "conn", None)
        if getattr(type(rw), "read_msg", None) is _noise_read_msg:
            # P1's reader: a message whole in its last read is taken without awaiting.
            conn.__dict__["_p2ps_rx"] = functools.partial(take_ready_msg, rw)


async def next_frame_header(reader: Any, n: int, retry_count: int = io_utils.DEFAULT_RETRY_READ_COUNT) -> bytes:
    """``yamux.read_exactly``: upstream's ``handle_incoming`` calls it only
    for the next frame header. Plain DATA frames are delivered here first."""
    ref = reader.__dict__.get("_p2ps_mux") if n == HEADER_SIZE else None
    mux = ref() if ref is not None else None
    if mux is None:
        return await read_exactly(reader, n, retry_count)
    d = reader.__dict__
    while True:
        deliver_plain_data(reader, mux)
        if len(d.get("_p2ps_cur", b"")) - d.get("_p2ps_pos", 0) > 0:
            return await read_exactly(reader, n, retry_count)  # a frame for upstream
        # Nothing buffered: take the next message -- at once if it lies whole
        # in the last socket read, else through P3's read (same errors at
        # EOF) -- and put it back as the current one.
        take = d.get("_p2ps_rx")
        msg = take() if take is not None else None
        if msg is None:
            msg = await reader.read(None)
        d["_p2ps_cur"], d["_p2ps_pos"] = msg, 0


def deliver_plain_data(session: Any, mux: Any) -> None:
    """Deliver the plain DATA frames at the front of ``session``'s current
    message to their streams' buffers; stop at the first other frame."""
    d = session.__dict__
    cur: bytes = d.get("_p2ps_cur", b"")
    pos: int = d.get("_p2ps_pos", 0)
    end = len(cur)
    if end - pos < HEADER_SIZE or mux.streams_lock.locked() or mux.event_shutting_down.is_set():
        return
    streams, buffers, events = mux.streams, mux.stream_buffers, mux.stream_events
    unpack_from = _HEADER.unpack_from
    with memoryview(cur) as view:
        while end - pos >= HEADER_SIZE:
            _version, typ, flags, sid, length = unpack_from(cur, pos)
            body_at = pos + HEADER_SIZE
            if typ != _TYPE_DATA or flags or length > end - body_at or length > _MAX_BODY:
                break
            stream = streams.get(sid)
            buffer = buffers.get(sid)
            event = events.get(sid)
            if stream is None or buffer is None or event is None or stream.closed:
                break
            if length > stream.recv_window:
                break  # beyond its credit: upstream's path counts it against the slack
            # A body that is most of its message is kept as a view of it
            # (``_libp2p_streambuf``: no copy; it pins at most a third more);
            # a smaller one is copied, so it cannot pin a large message.
            body = view[body_at : body_at + length]
            buffer.extend(body if length * 4 >= end * 3 else bytes(body))
            stream.recv_window -= length  # within its credit: never below 0
            event.set()
            pos = body_at + length
    d["_p2ps_cur"], d["_p2ps_pos"] = (b"", 0) if pos == end else (cur, pos)
