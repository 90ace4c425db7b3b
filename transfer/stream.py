"""The one seam between the transfer protocol and any transport.

The transfer runners take a ``ByteStream`` so they can be tested over trio
memory streams and run over libp2p streams (adapted in ``node/host.py``)
without knowing either.
"""

from __future__ import annotations

from typing import Protocol

#: A contiguous bytes-like object, as ``BufferStream.write`` takes.
Buffer = bytes | bytearray | memoryview


class ByteStream(Protocol):
    """An ordered, reliable, half-closable byte stream."""

    async def read(self, max_bytes: int) -> bytes:
        """Return up to ``max_bytes`` bytes; ``b""`` only at end of stream."""
        ...

    async def write(self, data: bytes) -> None:
        """Send all of ``data`` (any size; the adapter picks frame sizes)."""
        ...

    async def close_write(self) -> None:
        """Half-close: the peer reads EOF after the data already written."""
        ...

    async def reset(self) -> None:
        """Abort the stream in both directions."""
        ...


class BufferStream(ByteStream, Protocol):
    """A ``ByteStream`` whose ``write`` takes any contiguous buffer, so the
    sharer hands over the batch it sealed in place without a ``bytes`` copy
    (the caller does not touch the buffer until ``write`` returns)."""

    async def write(self, data: Buffer) -> None: ...
