"""Shared helpers for the transfer tests: in-memory ByteStreams and trees."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import trio
import trio.testing

T = TypeVar("T")

SHARER_ID = b"\x00\x24sharer-peer-id-0123456789abcdef"
RECEIVER_ID = b"\x00\x24receiver-peer-id-0123456789abcdef"


class MemByteStream:
    """``transfer.stream.BufferStream`` over one end of a trio memory stream pair.

    ``cut_after``: after that many bytes were written, the stream resets
    itself mid-write (the peer sees EOF), like a dropped connection.
    """

    def __init__(self, stream: trio.abc.HalfCloseableStream, cut_after: int | None = None) -> None:
        self._s = stream
        self.cut_after = cut_after
        self.written = 0
        self.read_bytes = 0

    async def read(self, max_bytes: int) -> bytes:
        try:
            data = await self._s.receive_some(max_bytes)
        except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            raise ConnectionResetError("stream reset") from exc
        self.read_bytes += len(data)
        return data

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.cut_after is not None and self.written + len(data) > self.cut_after:
            keep = max(0, self.cut_after - self.written)
            if keep:
                await self._s.send_all(data[:keep])
            self.written += keep
            await self.reset()
            raise ConnectionResetError("connection cut by the test")
        try:
            await self._s.send_all(data)
        except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            raise ConnectionResetError("stream reset") from exc
        self.written += len(data)

    async def close_write(self) -> None:
        await self._s.send_eof()

    async def reset(self) -> None:
        await self._s.aclose()


def stream_pair(cut_sharer_after: int | None = None) -> tuple[MemByteStream, MemByteStream]:
    """(receiver end, sharer end)."""
    a, b = trio.testing.memory_stream_pair()
    return MemByteStream(a), MemByteStream(b, cut_after=cut_sharer_after)


def write_file(path: Path, size: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(min(size, 1 << 20)) if size else b""
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n
    return path


def make_tree(root: Path) -> Path:
    """A tree with an empty file, an empty dir, nested dirs and a multi-MiB file."""
    top = root / "tree"
    write_file(top / "empty.txt", 0)
    (top / "empty-dir").mkdir(parents=True)
    write_file(top / "sub" / "deeper" / "small.bin", 1000)
    write_file(top / "big.bin", 3 * (1 << 20) + 12345)
    write_file(top / "sub" / "exact.bin", 128 * 1024)
    return top


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Relative path -> content (None for directories), ignoring partial dirs."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".p2pshare-partial"]
        rel = Path(dirpath).relative_to(root)
        for d in dirnames:
            out[str(rel / d)] = None
        for f in filenames:
            out[str(rel / f)] = (Path(dirpath) / f).read_bytes()
    return out


def run_past_fifo(fn: Callable[[], T], fifo: Path, seconds: float = 10.0) -> tuple[bool, T | BaseException]:
    """Run ``fn`` in a thread: (whether it was still blocked after
    ``seconds``, its result or exception). A run blocked opening ``fifo``
    is let go by opening the FIFO's other end, so a test ends either way."""
    out: list[T | BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            out.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(seconds)
    hung = worker.is_alive()
    if hung:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join()
    return hung, out[0]
