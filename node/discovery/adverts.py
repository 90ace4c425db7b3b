"""When each advertised key is provided again (pure: no trio, no py-libp2p).

A share's provider record is stored at the ``k`` closest DHT peers and
must be refreshed before it expires there; a round that reached nobody is
retried sooner (``RETRY_FIRST``, doubling up to the interval); and when our
addresses change (a relay reservation came or went) every key is provided
again soon, so the records carry the circuit addresses a receiver behind
a NAT needs, but one key at most every ``MIN_READVERTISE`` seconds. The
trio side (:class:`.service.Discovery`) runs the rounds; this decides when.
``now`` is the caller's monotonic clock; ``jitter`` (0.9-1.0 of the
interval) comes from the caller so tests are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["AdvertSchedule", "MIN_READVERTISE", "RETRY_FIRST"]

RETRY_FIRST = 30.0  # re-advertise after a round that reached nobody
MIN_READVERTISE = 5.0  # seconds between rounds for one key when addresses change
_MAX_FAILURES = 16


@dataclass
class _Ad:
    next_due: float  # math.inf while a round runs
    failures: int = 0
    last_sent: float = -math.inf  # when the latest round started
    dirty: bool = False  # our addresses changed since that round started


class AdvertSchedule:
    """The keys being advertised and when each is due again."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._ads: dict[bytes, _Ad] = {}

    def __len__(self) -> int:
        return len(self._ads)

    def __contains__(self, key: object) -> bool:
        return key in self._ads

    def add(self, key: bytes, now: float) -> None:
        """``key`` is advertised from now on; its first round starts at once."""
        self._ads[key] = _Ad(next_due=math.inf, last_sent=now)

    def remove(self, key: bytes) -> None:
        self._ads.pop(key, None)

    def due(self, now: float) -> list[bytes]:
        return [k for k, ad in self._ads.items() if ad.next_due <= now]

    def start(self, key: bytes, now: float) -> bool:
        """A round for ``key`` starts now; False if it was withdrawn meanwhile."""
        ad = self._ads.get(key)
        if ad is None:
            return False
        ad.next_due, ad.last_sent, ad.dirty = math.inf, now, False
        return True

    def done(self, key: bytes, stored: int, now: float, jitter: float) -> None:
        """A round ended with ``stored`` peers taking the record: when is the next?"""
        ad = self._ads.get(key)
        if ad is None:  # withdrawn meanwhile
            return
        if stored > 0:
            ad.failures = 0
            ad.next_due = now + self.interval * jitter
        else:
            ad.next_due = now + min(RETRY_FIRST * 2**ad.failures, self.interval)
            ad.failures = min(ad.failures + 1, _MAX_FAILURES)
        if ad.dirty:  # the addresses changed during the round: it sent the old ones
            ad.next_due = min(ad.next_due, max(now, ad.last_sent + MIN_READVERTISE))

    def addresses_changed(self, now: float) -> None:
        """Every key is due again soon (a running round is redone after it ends)."""
        for ad in self._ads.values():
            ad.dirty = True
            if ad.next_due != math.inf:
                ad.next_due = min(ad.next_due, max(now, ad.last_sent + MIN_READVERTISE))

    def next_due(self) -> float:
        """When the earliest key is due (``math.inf``: none is)."""
        return min((ad.next_due for ad in self._ads.values()), default=math.inf)
