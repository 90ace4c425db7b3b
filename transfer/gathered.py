"""A CHUNK body kept as the pieces it arrived in (issue 12).

A 1 MiB chunk arrives in ~16 yamux frames, one per 64 KiB Noise message.
Joining them into a fresh buffer per chunk cost a copy of every byte and
the fresh megabyte it is copied into (its pages faulted in each time), so
the pieces travel as they are to the stage that decrypts, which copies them
into a buffer it reuses (``Joiner``) and opens the chunk with one AES-GCM
call. ``FrameDecoder`` builds a ``Gathered`` only
from read-only pieces it may keep: views of immutable ``bytes`` that are
most of the object they pin (so a kept view pins at most a third more than
it holds), or copies.
"""

from __future__ import annotations

from collections.abc import MutableSequence
from typing import Any

__all__ = ["Gathered", "Joiner", "Piece", "GATHER_BYTES", "add_piece"]

#: A piece: ``bytes``, a view of ``bytes``, or a ``bytearray`` that only
#: the ``Gathered`` holds (the decoder's copies).
Piece = bytes | memoryview | bytearray

#: Copied bytes are gathered into buffers of up to this size, so that input
#: in slivers (a byte at a time, or 1-byte yamux frames) costs one object
#: per ~64 KiB, not one per sliver.
GATHER_BYTES = 64 * 1024


def add_piece(pieces: MutableSequence[Any], data: Any, keep: bool) -> None:
    """Append ``data`` to ``pieces``: as it is if ``keep`` (the caller has
    judged it safe to hold), else copied onto the last gathering
    ``bytearray`` while that has room, or into a new one.

    The one gathering rule of the receive path: the yamux stream buffer
    (small frame bodies) and the frame decoder (CHUNK bytes it may not keep
    as views) both use it."""
    if keep:
        pieces.append(data)
        return
    last = pieces[-1] if pieces else None
    if type(last) is bytearray and len(last) + len(data) <= GATHER_BYTES:
        last += data
    else:
        pieces.append(bytearray(data))


class Gathered:
    """An ordered list of read-only pieces that reads as their concatenation."""

    __slots__ = ("pieces", "_size")

    def __init__(self, pieces: list[Piece]) -> None:
        self.pieces = pieces
        self._size = sum(len(p) for p in pieces)

    def __len__(self) -> int:
        return self._size

    def __bytes__(self) -> bytes:
        return b"".join(self.pieces)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Gathered):
            return bytes(self) == bytes(other)
        if isinstance(other, (bytes, bytearray, memoryview)):
            return bytes(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to bytes, so not hashable like them

    def __repr__(self) -> str:
        return f"<Gathered {self._size} bytes in {len(self.pieces)} pieces>"


class Joiner:
    """A buffer, reused, that a ``Gathered`` body is copied into end to end.

    Why not decrypt the pieces one by one (AES-GCM's streaming interface,
    as before): that interface holds the GIL while it works (~0.14 s per
    GiB, during which no other thread of the receiver runs) and takes ~17
    calls a megabyte; one-shot AES-GCM releases the GIL. The copy costs
    ~0.015 s per GiB, into memory already touched. Measured (1 GiB
    ``get``, medians of alternated runs): with stage 1 in its own thread, a
    first version (a fresh ``bytes`` per chunk) 0.05-0.25 s sooner connect
    -> done in three batteries of 5-7 runs, this one -0.09 and +0.03 s in
    two; with stage 1 on the event loop, 0.09 s sooner than the streaming
    interface there. Not thread-safe: one per thread that decrypts."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def join(self, body: Gathered) -> memoryview:
        """A view of ``body``'s bytes in this buffer, valid until the next call."""
        size = len(body)
        if len(self._buf) < size:
            self._buf = bytearray(size)  # a new one: a view of the old may still be alive
        pos = 0
        with memoryview(self._buf) as view:
            for piece in body.pieces:
                end = pos + len(piece)
                view[pos:end] = piece
                pos = end
            return view[:pos]
