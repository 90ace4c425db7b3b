"""The one seam between the transfer protocol and any transport.

The transfer runners take a ``ByteStream`` so they can be tested over trio
memory streams and run over libp2p streams (adapted in ``node/host.py``)
without knowing either.
"""

from __future__ import annotations

from typing import Protocol


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
