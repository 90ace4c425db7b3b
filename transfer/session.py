"""What both roles' state machines share: the outgoing buffer, frame
decoding, turning a failure into an ERROR frame exactly once, and the one
rule for which wanted chunks still travel once files are unavailable (pure)."""

from __future__ import annotations

import enum
from collections.abc import Container, Iterable, Iterator
from typing import ClassVar, Generic, TypeVar

from p2pshare.transfer import ranges, wire
from p2pshare.transfer.errors import AuthenticationError, ProtocolError, TransferError
from p2pshare.transfer.manifest import Manifest

EventT = TypeVar("EventT")


def wanted_chunks(want: Iterable[ranges.Range], manifest: Manifest, unavailable: Container[int]) -> Iterator[int]:
    """The wanted global chunk indices in order, without the chunks of files in ``unavailable``.

    Both sides walk the WANT with this and the same set of files, so after a
    FILE_UNAVAILABLE neither sends nor expects that file's chunks. The set is
    looked at before every chunk: a file marked while the walk is under way
    is skipped from its next chunk on (whole, not chunk by chunk). It must
    not change while a ``next`` runs; the sharer marks files between batches.
    """
    for g, _, _ in walk_wanted(want, manifest, unavailable):
        yield g


def walk_wanted(
    want: Iterable[ranges.Range], manifest: Manifest, unavailable: Container[int]
) -> Iterator[tuple[int, int, int]]:
    """``wanted_chunks`` with each chunk's place: (global index, file index,
    chunk index in that file).

    One ``locate`` per range, then a cursor that moves from file to file
    (past files without chunks): a ``locate`` per chunk (a bisect over all
    files) was ~1 µs per small file, paid again by the receiver for each
    chunk that arrived (issue 12). An index past the last chunk raises
    ``IndexError`` where it is reached, as ``locate`` does."""
    files = manifest.files
    for start, end in want:
        if start >= end:
            continue
        f, c = manifest.locate(start)
        first = start - c
        after = first + len(files[f].chunk_hashes)
        g = start
        while g < end:
            if g >= after:  # past file f: on to the next file that holds g
                f += 1
                if f >= len(files):
                    raise IndexError("chunk index out of range")  # as ``locate`` says
                first, after = after, after + len(files[f].chunk_hashes)
                continue
            if f in unavailable:
                g = after
                continue
            yield g, f, g - first
            g += 1


class SessionCore(Generic[EventT]):
    """Bytes in (``receive_data``) → events out; bytes out via ``data_to_send``.

    Subclasses set ``state`` (an enum with DONE and FAILED members named in
    ``_DONE``/``_FAILED``) and implement ``_handle`` for one decoded message.
    """

    _DONE: ClassVar[enum.Enum]
    _FAILED: ClassVar[enum.Enum]
    state: enum.Enum

    def __init__(self, decoder: wire.FrameDecoder) -> None:
        self._decoder = decoder
        self._out: list[bytes] = []

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def frames_to_send(self) -> list[bytes]:
        """``data_to_send`` frame by frame, not joined: a large frame (a
        manifest, sealed once per share) is not copied for each receiver."""
        out = list(self._out)
        self._out.clear()
        return out

    def send_error(self, code: wire.ErrorCode, message: str) -> None:
        if self.state not in (self._DONE, self._FAILED):
            self._out.append(wire.encode(wire.Error(code, message)))
        self.state = self._FAILED

    def receive_data(self, data: bytes | list[bytes | memoryview]) -> list[EventT]:
        """Decode ``data`` (bytes, or the read-only pieces of a scatter read)."""
        if self.failed:
            raise ProtocolError("session already failed")
        try:
            messages = self._decoder.feed_all(data) if isinstance(data, list) else self._decoder.feed(data)
            return [ev for msg in messages for ev in self._handle(msg)]
        except TransferError as exc:
            if not self.failed:
                self.send_error(self._error_code(exc), str(exc))
            raise

    def _error_code(self, exc: TransferError) -> wire.ErrorCode:
        return wire.ErrorCode.AUTH_FAILED if isinstance(exc, AuthenticationError) else wire.ErrorCode.PROTOCOL

    def _handle(self, msg: wire.Message) -> list[EventT]:
        raise NotImplementedError

    @property
    def failed(self) -> bool:
        return self.state is self._FAILED

    def _require(self, state: enum.Enum) -> None:
        if self.state is not state:
            raise RuntimeError(f"not allowed in state {self.state.value}")
