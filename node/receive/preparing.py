"""How long a receiver waits for a sharer that is still hashing (PREPARING).

Hashing progress is only the sharer's word: one more byte of a 2**63-byte
total each second held ``get --timeout 5`` for ever (a hostile-peer review,
stop 42). So it counts in whole percents of the first total named (a total
it changes later counts for nothing), and a sharer can extend the wait at
most 101 times: once while it is still listing (total 0), then at each
percent. An honest sharer whose every 1% takes longer than the timeout is
given up on; ``--timeout`` says how long to wait.
"""

from __future__ import annotations

from p2pshare.node.errors import PeerUnreachableError
from p2pshare.transfer.events import ManifestReceived, SharerPreparing

__all__ = ["PreparingWatch"]


class PreparingWatch:
    """The sharer's hashing as one receive session saw it (pure)."""

    def __init__(self) -> None:
        self.total = 0  # the first non-zero total named
        self.percent = -1  # the most whole percents of it said done; -1: no PREPARING yet
        self.listed = False  # the list of files (manifest) arrived: preparing is over

    def moved_on(self, event: SharerPreparing | ManifestReceived) -> bool:
        """Note a PREPARING (or the list of files, which ends preparing);
        True when it is progress that earns more time."""
        if isinstance(event, ManifestReceived):
            self.listed = True
            return False
        done, total = event.done, event.total
        if total > 0 and not self.total:
            self.total = total
        if total != self.total:
            return False
        percent = min(100, done * 100 // total) if total else 0
        if percent <= self.percent:
            return False
        self.percent = percent
        return True

    def stalled(self, timeout: float) -> PeerUnreachableError | None:
        """The error for running out of time while the sharer still prepares, else None."""
        if self.percent < 0 or self.listed:
            return None
        return PeerUnreachableError(
            f"the sharer is still preparing ({self.percent}% hashed) and hashed no further 1% "
            f"in {timeout:g} s; run the same command again later, or with a larger --timeout"
        )
