"""Small trio helpers shared by the transfer runners."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from p2pshare.transfer.errors import StreamEndedError, TransferError
from p2pshare.transfer.stream import Buffer, BufferStream, ByteStream

log = logging.getLogger(__name__)
T = TypeVar("T")

READ_SIZE = 1 << 20
#: How long to wait for a best-effort goodbye (ERROR frame, half-close).
GOODBYE_SECONDS = 2.0


async def read_some(stream: ByteStream, timeout: float, what: str, max_bytes: int = READ_SIZE) -> bytes:
    """Read up to ``max_bytes``; map silence and transport failures to StreamEndedError."""
    return await _guarded_read(lambda: stream.read(max_bytes), timeout, what)


async def read_pieces_some(stream: ByteStream, timeout: float, what: str, max_bytes: int) -> list[bytes | memoryview]:
    """``read_some`` as read-only pieces (``[]`` at end of stream) from a
    stream that can hand them out without joining them
    (``LibP2PByteStream.read_pieces``); one ``bytes`` piece from any other."""
    read_pieces = getattr(stream, "read_pieces", None)
    if read_pieces is not None:
        pieces: list[bytes | memoryview] = await _guarded_read(lambda: read_pieces(max_bytes), timeout, what)
        return pieces
    data = await read_some(stream, timeout, what, max_bytes)
    return [data] if data else []


async def _guarded_read(read: Callable[[], Awaitable[T]], timeout: float, what: str) -> T:
    with trio.move_on_after(timeout):
        try:
            return await read()
        except TransferError:
            raise
        except Exception as exc:  # any transport: reset, broken pipe, closed
            log.debug("read failed: %r", exc)
            raise StreamEndedError(f"the connection to the {what} broke") from None
    raise StreamEndedError(f"the {what} stopped responding for {timeout:.0f} s")


async def write_all(stream: ByteStream, data: bytes, timeout: float, what: str) -> None:
    if data:
        await _guarded_write(lambda: stream.write(data), timeout, what)


async def write_buffer(stream: BufferStream, data: Buffer, timeout: float, what: str) -> None:
    """``write_all`` for any buffer (the sharer's batches, sealed in place)."""
    if len(data):
        await _guarded_write(lambda: stream.write(data), timeout, what)


async def write_frames(stream: BufferStream, frames: list[bytes], timeout: float, what: str, piece: int) -> None:
    """``write_all`` of ``frames`` in pieces of at most ``piece`` bytes, all
    within ``timeout``: a peer that reads nothing holds one piece of ours
    (and the kernel's buffer), not a frame copied whole for it."""

    async def pieces() -> None:
        for frame in frames:
            view = memoryview(frame)
            for start in range(0, len(view), piece):
                await stream.write(view[start : start + piece])

    await _guarded_write(pieces, timeout, what)


async def _guarded_write(write: Callable[[], Awaitable[None]], timeout: float, what: str) -> None:
    with trio.move_on_after(timeout):
        try:
            await write()
            return
        except TransferError:
            raise
        except Exception as exc:
            log.debug("write failed: %r", exc)
            raise StreamEndedError(f"the connection to the {what} broke") from None
    raise StreamEndedError(f"the {what} stopped reading for {timeout:.0f} s")


async def goodbye(stream: ByteStream, data: bytes, timeout: float = GOODBYE_SECONDS, *, shield: bool = True) -> None:
    """Best effort: send ``data`` (an ERROR frame, maybe) and half-close;
    ``shield``: even while being cancelled (a cleanup that tells the peer)."""
    with trio.move_on_after(timeout) as scope:
        scope.shield = shield
        try:
            if data:
                await stream.write(data)
            await stream.close_write()
        except Exception as exc:  # the peer may be gone already
            log.debug("goodbye failed: %r", exc)


async def await_eof(stream: ByteStream, timeout: float = GOODBYE_SECONDS, *, shield: bool = True) -> None:
    """Wait (bounded) until the peer half-closes too, discarding anything it sends.

    Returning only after the peer's EOF means our last frame (DONE, ERROR)
    was read before the caller resets or closes the stream.
    """
    with trio.move_on_after(timeout) as scope:
        scope.shield = shield
        try:
            for _ in range(64):
                if not await stream.read(READ_SIZE):
                    return
        except Exception as exc:
            log.debug("waiting for EOF failed: %r", exc)


async def reset_quietly(stream: ByteStream) -> None:
    with trio.move_on_after(GOODBYE_SECONDS) as scope:
        scope.shield = True
        try:
            await stream.reset()
        except Exception as exc:
            log.debug("reset failed: %r", exc)


class TaskGroup:
    """Run tasks together; the first failure cancels the rest and is re-raised
    as itself (not wrapped in an ExceptionGroup), so callers catch
    ``TransferError`` directly."""

    def __init__(self) -> None:
        self.failure: Exception | None = None

    async def run(self, *tasks: Callable[[], Awaitable[None]]) -> None:
        async with trio.open_nursery() as nursery:
            for task in tasks:
                nursery.start_soon(self._guard, task, nursery.cancel_scope)
        if self.failure is not None:
            raise self.failure

    async def _guard(self, task: Callable[[], Awaitable[None]], scope: trio.CancelScope) -> None:
        try:
            await task()
        except Exception as exc:
            # Prefer a meaningful TransferError over a knock-on failure of a sibling.
            if self.failure is None or (isinstance(exc, TransferError) and not isinstance(self.failure, TransferError)):
                self.failure = exc
            scope.cancel()
