"""The relay client's reservation schedule (pure: no trio, no py-libp2p).

Which configured relays to hold a reservation on, when to refresh one, how
long to back off after a relay failed, and when to look again: the trio
client (:mod:`.client`) asks this and does the I/O. Decisions in one place
so the unit tests can walk failover and backoff with fake time.

* Hold up to ``want`` reservations, preferring relays in the configured order
  (the operator's preference; codes name them in that order too).
* Refresh halfway to the expiry the relay granted (at least ``MIN_REFRESH``
  apart), trusting no expiry more than ``MAX_EXPIRY`` ahead.
* A relay that fails (dial, refusal, refresh, lost connection) is retried
  after ``BACKOFF_MIN * 2**(failures-1)`` s, at most ``BACKOFF_MAX``; a
  reservation granted resets its count. Meanwhile the next configured relay
  takes its place (failover), as a hold that ends frees a slot.

Two clocks: retry times are monotonic (the caller's ``now``), expiries are
UTC UNIX seconds as the relay grants them (``wall_now``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BACKOFF_MIN",
    "BACKOFF_MAX",
    "MAX_EXPIRY",
    "MIN_REFRESH",
    "IDLE_RECHECK",
    "Plan",
    "ReservationSchedule",
    "accept_expiry",
    "backoff",
]

BACKOFF_MIN = 1.0
BACKOFF_MAX = 60.0
MAX_EXPIRY = 24 * 3600  # never trust an expiry further out than this
MIN_REFRESH = 0.5  # seconds between two RESERVEs on one relay, whatever the expiry
IDLE_RECHECK = 30.0  # with nothing to wait for, look again after this long


def accept_expiry(expire: int, wall_now: float) -> int | None:
    """The expiry to hold a reservation until: None if already past, else
    ``expire`` capped at ``MAX_EXPIRY`` from now."""
    now = int(wall_now)
    if expire <= now:
        return None
    return min(expire, now + MAX_EXPIRY)


def backoff(failures: int) -> float:
    """Seconds before retrying a relay that failed ``failures`` times in a row."""
    return min(BACKOFF_MAX, BACKOFF_MIN * 2.0 ** max(0, failures - 1))


@dataclass(frozen=True)
class Plan:
    start: tuple[str, ...]  # relays (peer IDs) to start holding now, in order
    wake_at: float  # monotonic time to plan again, unless a hold ends first


class ReservationSchedule:
    """What the client should be doing about reservations, given what happened."""

    def __init__(self, relays: Sequence[str], want: int) -> None:
        self.relays = tuple(dict.fromkeys(relays))
        self.want = max(1, want)
        self.holding: set[str] = set()  # a hold task runs (connecting, reserved or refreshing)
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}

    def plan(self, now: float) -> Plan:
        """Start holds on the first relays (configured order) that are neither
        held nor backing off, until ``want`` are held."""
        start: list[str] = []
        wake_at = now + IDLE_RECHECK
        for relay in self.relays:
            if len(self.holding) >= self.want:
                break
            if relay in self.holding:
                continue
            at = self.retry_at.get(relay, 0.0)
            if at > now:
                wake_at = min(wake_at, at)
                continue
            self.holding.add(relay)
            start.append(relay)
        return Plan(tuple(start), wake_at)

    def reserved(self, relay: str, expire: int, wall_now: float) -> float:
        """A reservation was granted (or refreshed) until ``expire``: seconds
        until the next refresh."""
        self.failures.pop(relay, None)
        self.retry_at.pop(relay, None)
        return max(MIN_REFRESH, (expire - wall_now) / 2)

    def failed(self, relay: str, now: float) -> float:
        """A hold on ``relay`` failed: seconds until it may be tried again."""
        fails = self.failures.get(relay, 0) + 1
        self.failures[relay] = fails
        delay = backoff(fails)
        self.retry_at[relay] = now + delay
        return delay

    def released(self, relay: str) -> None:
        """The hold on ``relay`` ended (after ``failed``, or cancelled)."""
        self.holding.discard(relay)
