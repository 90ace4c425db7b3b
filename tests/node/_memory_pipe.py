"""One end of an in-memory stream as py-libp2p's ``ReadWriteCloser``, for the multistream tests."""

from __future__ import annotations

from typing import Any

from libp2p.io.abc import ReadWriteCloser


class RecordedPipe(ReadWriteCloser):
    """A ReadWriteCloser over one end of a memory stream; ``log`` is the order of
    operations: "w" per write, "r" for the first read after a write."""

    def __init__(self, stream: Any, log: list[str] | None = None) -> None:
        self.stream = stream
        self.log: list[str] = [] if log is None else log

    async def write(self, data: bytes) -> None:
        self.log.append("w")
        await self.stream.send_all(data)

    async def read(self, n: int | None = None) -> bytes:
        if self.log[-1:] != ["r"]:
            self.log.append("r")
        return bytes(await self.stream.receive_some(n or 65536))

    async def close(self) -> None:
        await self.stream.aclose()

    def get_remote_address(self) -> tuple[str, int] | None:
        return None
