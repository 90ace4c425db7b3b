"""A yamux stream's receive buffer kept as the received pieces, joined once
when the application reads (issue 12), and bounded by the granted window.

Upstream keeps each stream's unread data in a ``bytearray``: every frame
body is copied onto its end, the array regrows (each growth may copy it
again into fresh memory), and every read copies the front out and shrinks
or frees it. At 64 KiB per frame that was ~9 % of the receiving process's
event-loop CPU (py-spy, 1 GiB ``get``), most of it fresh memory being
faulted in. Here a body is kept as it came -- the decrypted Noise message's
``bytes`` or a view of it (``_libp2p_yamux_rx`` P10 hands a view when the
body is most of its message, so a view pins at most a third more than it
holds) -- and a read joins the pieces it takes into one ``bytes``: one copy
per byte, none when a read takes exactly one whole ``bytes`` piece, and none
at all for a reader that takes the pieces themselves (``take_pieces``).

The class offers what py-libp2p's yamux and our patches do with a stream
buffer -- ``len``, truth, ``extend``, ``bytes(buf)``, ``buf[:n]``,
``del buf[:n]``, ``clear`` -- and nothing else (``tests/node/test_streambuf.py``
runs upstream's read paths against it and against a ``bytearray``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio
from libp2p.network.stream.net_stream import NetStream, StreamState
from libp2p.stream_muxer.yamux import yamux

from p2pshare.errors import ProtocolViolation
from p2pshare.transfer.gathered import add_piece

from ._libp2p_yamux_rx import FLOW_CONTROL_SLACK

__all__ = ["StreamBuffer", "YamuxFlowControlViolation", "read_pieces"]


class YamuxFlowControlViolation(ProtocolViolation, ConnectionError):
    """A peer sent more on a yamux stream than the window it was granted."""


Piece = bytes | memoryview
#: Bodies smaller than this are copied into shared buffers (``add_piece``).
_SMALL = 4096


class StreamBuffer:
    """Unread bytes of one yamux stream, in arrival order; refuses data
    beyond the window granted to the peer, plus :data:`FLOW_CONTROL_SLACK`
    over the stream's whole life.

    The slack is spent, not re-granted: both receive paths clamp the
    stream's ``recv_window`` at 0 after an overrun (upstream's does), so a
    check of each frame against "credit + slack" alone let a peer send one
    slack's worth per frame for ever, with no credit at all (125 MiB
    buffered in 2,000 frames on a 256 KiB window while nothing read it).
    ``_excess`` keeps what the peer has already sent beyond its credit."""

    __slots__ = ("_conn", "_sid", "_pieces", "_size", "_excess")

    def __init__(self, conn: Any, sid: int) -> None:
        self._conn = conn
        self._sid = sid
        self._pieces: deque[Piece | bytearray] = deque()  # bytearray: gathered small bodies
        self._size = 0
        self._excess = 0  # bytes accepted beyond the credit granted, in all

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"<StreamBuffer stream={self._sid} {self._size} bytes in {len(self._pieces)} pieces>"

    def extend(self, data: Any) -> None:
        stream = self._conn.streams.get(self._sid)
        credit = stream.recv_window if stream is not None else yamux.DEFAULT_WINDOW_SIZE
        excess = self._excess + max(len(data) - max(credit, 0), 0)
        if excess > FLOW_CONTROL_SLACK:
            self._conn.event_shutting_down.set()  # upstream then closes the connection
            raise YamuxFlowControlViolation(
                f"peer {self._conn.peer_id} sent {len(data)} bytes on stream {self._sid} with {credit} bytes"
                f" of credit ({excess} beyond its window in all)"
            )
        self._excess = excess
        self.append(data)

    def append(self, data: Any) -> None:
        """Keep ``data`` as it is (``bytes`` or a read-only view); any other
        buffer is copied, and a small body is copied onto the small bodies
        before it. No window check: the caller has made it.

        Small bodies are gathered so that a peer sending 1-byte frames does
        not cost an object (~40 bytes) per byte of its window."""
        size = len(data)
        if not size:
            return
        pieces = self._pieces
        self._size += size
        if size < _SMALL:
            add_piece(pieces, data, keep=False)
            return
        if type(data) is not bytes and (type(data) is not memoryview or not data.readonly):
            data = bytes(data)  # only read-only pieces are kept (``take_pieces`` hands them out)
        pieces.append(data)

    def __bytes__(self) -> bytes:
        return self._peek(self._size)

    def __getitem__(self, key: slice) -> bytes:
        n = _prefix_length(key, self._size)
        return self._peek(n)

    def __delitem__(self, key: slice) -> None:
        self._drop(_prefix_length(key, self._size))

    def clear(self) -> None:
        self._pieces.clear()
        self._size = 0

    def take_pieces(self, n: int) -> list[Piece]:
        """Remove and return the first ``n`` bytes as the pieces they are
        kept in (read-only: ``bytes`` or views of ``bytes``), not joined.

        A reader that can use pieces (``LibP2PByteStream.read_pieces``)
        saves the one copy a read otherwise costs."""
        n = min(n, self._size)
        pieces = self._pieces
        taken: list[Piece] = []
        got = 0
        while got < n:
            piece = pieces[0]
            need = n - got
            if isinstance(piece, bytearray):  # gathered small bodies: handed out as bytes
                if len(piece) > need:
                    taken.append(bytes(piece[:need]))
                    del piece[:need]
                    got = n
                    break
                taken.append(bytes(pieces.popleft()))
                got += len(piece)
                continue
            if len(piece) > need:
                with memoryview(piece) as whole:
                    taken.append(whole[:need])
                    pieces[0] = whole[need:]
                got = n
                break
            pieces.popleft()
            taken.append(piece)
            got += len(piece)
        self._size -= got
        return taken

    def _drop(self, n: int) -> None:
        """Remove the first ``n`` bytes without building them."""
        pieces = self._pieces
        left = n = min(max(n, 0), self._size)
        while left:
            size = len(pieces[0])
            if size > left and type(pieces[0]) is bytearray:
                del pieces[0][:left]
                break
            if size > left:
                with memoryview(pieces[0]) as whole:
                    pieces[0] = whole[left:]
                break
            pieces.popleft()
            left -= size
        self._size -= n

    def _peek(self, n: int) -> bytes:
        """The first ``n`` bytes as one ``bytes`` (nothing removed)."""
        n = min(n, self._size)
        if n <= 0:
            return b""
        taken: list[Piece | bytearray] = []
        got = 0
        for piece in self._pieces:
            need = n - got
            if len(piece) >= need:
                if len(piece) > need:
                    piece = piece[:need] if type(piece) is bytearray else memoryview(piece)[:need]
                taken.append(piece)
                break
            taken.append(piece)
            got += len(piece)
        return taken[0] if len(taken) == 1 and type(taken[0]) is bytes else b"".join(taken)


async def read_pieces(net_stream: Any, max_bytes: int) -> list[Piece] | None:
    """Up to ``max_bytes`` of ``net_stream``'s data as the pieces its
    :class:`StreamBuffer` holds (read-only, not joined), waiting for data
    like upstream's read; None whenever upstream's ``NetStream.read`` must
    answer instead (end of stream, reset, a closing connection, a lazy
    protocol answer still to check, a buffer that is not ours).

    The steps are upstream's (``NetStream.read`` -> ``YamuxStream.read`` ->
    ``Yamux.read_stream``, fingerprinted in ``_libp2p_patches.DEPENDS``):
    state checks, take the buffered bytes, the window update for what was
    read; or wait on the stream's event and swap in a fresh one."""
    if type(net_stream) is not NetStream or "read" in net_stream.__dict__:  # P9's first read checks answers
        return None
    muxed = net_stream.muxed_stream
    if type(muxed) is not yamux.YamuxStream:
        return None
    conn, sid = muxed.conn, muxed.stream_id
    while True:
        buffer: Any = conn.stream_buffers.get(sid)  # ours once ``yamux_flow_control`` is applied
        if (
            type(buffer) is not StreamBuffer
            or net_stream._state not in (StreamState.OPEN, StreamState.CLOSE_WRITE)
            or conn.streams.get(sid) is not muxed
            or muxed.closed
            or muxed.reset_received
            or conn.event_shutting_down.is_set()
            or conn.streams_lock.locked()
        ):
            return None
        if len(buffer):
            pieces = buffer.take_pieces(max_bytes)
            await muxed._auto_tune_and_send_window_update(bytes_read=sum(len(p) for p in pieces))
            return pieces
        event = conn.stream_events.get(sid)
        if muxed.recv_closed or event is None:
            return None
        await event.wait()
        if conn.stream_events.get(sid) is event:
            conn.stream_events[sid] = trio.Event()


def _prefix_length(key: Any, size: int) -> int:
    """``n`` for ``[:n]`` (the only slice yamux takes of a buffer)."""
    if not isinstance(key, slice) or key.start not in (None, 0) or key.step not in (None, 1):
        raise TypeError("a stream buffer only takes prefix slices [:n]")
    stop = size if key.stop is None else key.stop
    if stop < 0:
        stop = max(size + stop, 0)
    return min(stop, size)
