"""How long a receiver waits for a sharer that is still hashing (PREPARING).

Hashing progress is only the sharer's word: one more byte of a 2**63-byte
total each second held ``get --timeout 5`` for ever (a hostile-peer review,
stop 42). So it earns more time only in steps: another 1% of the total, or
another GiB where 1% is more (a first review counted whole percents only,
and a second found that an honest 500 GB share hashed from a USB disk at
80 MB/s then ran out of time: 5 GB took over a minute). The total is the
first one named, and no larger than the largest share a manifest can
describe (4 TiB); a total it changes later, or an impossible one, earns
nothing. So a sharer extends the wait at most ~4,200 times, and an honest
one hashing at least 1 GiB (or 1%) per ``--timeout`` is waited for.
"""

from __future__ import annotations

from p2pshare.node.errors import PeerUnreachableError
from p2pshare.transfer.events import ManifestReceived, SharerPreparing
from p2pshare.transfer.manifest import MAX_CHUNK_SIZE, MAX_TOTAL_CHUNKS

__all__ = ["MAX_SHARE_BYTES", "STEP_BYTES", "PreparingWatch"]

#: The largest share a manifest can describe.
MAX_SHARE_BYTES = MAX_TOTAL_CHUNKS * MAX_CHUNK_SIZE
#: Hashing that earns more time at most (1% of a share, or this if less).
STEP_BYTES = 1 << 30


class PreparingWatch:
    """The sharer's hashing as one receive run saw it (pure). Kept for the
    whole run: a watch started afresh at each attempt would let a sharer
    that resets the stream extend the wait without end."""

    def __init__(self) -> None:
        self.total = 0  # the first non-zero total named
        self.credited = -1  # bytes done when time was last given; -1: no PREPARING yet
        self.percent = 0  # as last said, for the message
        self.now = False  # this attempt's last word was PREPARING (no list of files yet)

    def attempt_started(self) -> None:
        self.now = False

    def moved_on(self, event: SharerPreparing | ManifestReceived) -> bool:
        """Note a PREPARING (or the list of files, which ends preparing);
        True when it is progress that earns more time."""
        if isinstance(event, ManifestReceived):
            self.now = False
            return False
        self.now = True
        done, total = event.done, event.total
        self.percent = min(100, done * 100 // total) if total else 0
        if total > MAX_SHARE_BYTES or done > total > 0:
            return False  # no share is that large, or more done than there is
        if total > 0 and not self.total:
            self.total = total
        if total not in (0, self.total):
            return False
        if self.credited < 0:
            self.credited = done  # the first word (still listing, or the first figure) counts once
            return True
        if not total or done - self.credited < min(max(total // 100, 1), STEP_BYTES):
            return False
        self.credited = done
        return True

    def stalled(self, timeout: float) -> PeerUnreachableError | None:
        """The error for running out of time while the sharer still prepares, else None."""
        if not self.now or self.percent >= 100:
            return None
        return PeerUnreachableError(
            f"the sharer is still preparing ({self.percent}% hashed) and hashed no further 1% (or 1 GiB) "
            f"in {timeout:g} s; run the same command again later, or with a larger --timeout"
        )
