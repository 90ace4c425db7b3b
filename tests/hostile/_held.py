"""What the stream floods count: streams opened, and how many the target reset."""

from __future__ import annotations

from typing import Any


class HeldStreams:
    """Streams a flooder opened; ``held`` is those the target has not reset
    (a read of a held stream waits; of a reset one, ends or fails)."""

    def __init__(self) -> None:
        self.opened = 0
        self.reset = 0

    @property
    def held(self) -> int:
        return self.opened - self.reset

    def refused(self) -> None:
        """A stream that failed to open: refused at once."""
        self.opened += 1
        self.reset += 1

    async def watch(self, stream: Any) -> None:
        """Count ``stream`` as opened, then as reset once a read of it ends or fails."""
        self.opened += 1
        try:
            if not await stream.read(1):
                self.reset += 1
        except Exception:
            self.reset += 1
