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
per byte, none when a read takes exactly one whole ``bytes`` piece.

The class offers what py-libp2p's yamux and our patches do with a stream
buffer -- ``len``, truth, ``extend``, ``bytes(buf)``, ``buf[:n]``,
``del buf[:n]``, ``clear`` -- and nothing else (``tests/node/test_streambuf.py``
runs upstream's read paths against it and against a ``bytearray``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from libp2p.stream_muxer.yamux import yamux

from p2pshare.errors import ProtocolViolation

from ._libp2p_yamux_rx import FLOW_CONTROL_SLACK

__all__ = ["StreamBuffer", "YamuxFlowControlViolation"]


class YamuxFlowControlViolation(ProtocolViolation, ConnectionError):
    """A peer sent more on a yamux stream than the window it was granted."""


Piece = bytes | memoryview


class StreamBuffer:
    """Unread bytes of one yamux stream, in arrival order; refuses data
    beyond the window granted to the peer (plus one frame of slack)."""

    __slots__ = ("_conn", "_sid", "_pieces", "_size")

    def __init__(self, conn: Any, sid: int) -> None:
        self._conn = conn
        self._sid = sid
        self._pieces: deque[Piece] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"<StreamBuffer stream={self._sid} {self._size} bytes in {len(self._pieces)} pieces>"

    def extend(self, data: Any) -> None:
        stream = self._conn.streams.get(self._sid)
        credit = stream.recv_window if stream is not None else yamux.DEFAULT_WINDOW_SIZE
        if len(data) > max(credit, 0) + FLOW_CONTROL_SLACK:
            self._conn.event_shutting_down.set()  # upstream then closes the connection
            raise YamuxFlowControlViolation(
                f"peer {self._conn.peer_id} sent {len(data)} bytes on stream {self._sid} with {credit} bytes of credit"
            )
        self.append(data)

    def append(self, data: Any) -> None:
        """Keep ``data`` as it is (``bytes`` or a view nobody will change); any
        other buffer is copied. No window check: the caller has made it."""
        size = len(data)
        if not size:
            return
        if type(data) is not bytes and type(data) is not memoryview:
            data = bytes(data)
        self._pieces.append(data)
        self._size += size

    def __bytes__(self) -> bytes:
        return self._take(self._size, consume=False)

    def __getitem__(self, key: slice) -> bytes:
        n = _prefix_length(key, self._size)
        return self._take(n, consume=False)

    def __delitem__(self, key: slice) -> None:
        self._take(_prefix_length(key, self._size), consume=True)

    def clear(self) -> None:
        self._pieces.clear()
        self._size = 0

    def _take(self, n: int, *, consume: bool) -> bytes:
        """The first ``n`` bytes as one ``bytes``; removed if ``consume``."""
        n = min(n, self._size)
        if n <= 0:
            return b""
        pieces = self._pieces
        taken: list[Piece] = []
        got = whole = split = 0  # bytes so far, whole pieces taken, bytes of a split one
        while got < n:
            piece = pieces[whole]
            need = n - got
            if len(piece) > need:
                taken.append(memoryview(piece)[:need])
                split = need
                break
            taken.append(piece)
            got += len(piece)
            whole += 1
        out = taken[0] if len(taken) == 1 and type(taken[0]) is bytes else b"".join(taken)
        if consume:
            for _ in range(whole):
                pieces.popleft()
            if split:
                pieces[0] = memoryview(pieces[0])[split:]
            self._size -= n
        return out


def _prefix_length(key: Any, size: int) -> int:
    """``n`` for ``[:n]`` (the only slice yamux takes of a buffer)."""
    if not isinstance(key, slice) or key.start not in (None, 0) or key.step not in (None, 1):
        raise TypeError("a stream buffer only takes prefix slices [:n]")
    stop = size if key.stop is None else key.stop
    if stop < 0:
        stop = max(size + stop, 0)
    return min(stop, size)
