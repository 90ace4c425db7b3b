"""The relay client's reservation schedule (pure: no trio, no py-libp2p).

Which relays to hold a reservation on, when to refresh one, how long to
back off after a relay failed, when to trade a relay for a better one, and
when to look again: the trio client (:mod:`.client`) asks this and does the
I/O. Decisions in one place so the unit tests can walk failover, backoff and
AutoRelay with fake time.

* Candidates are the configured relays (``--relay``, ``relays =``: the
  operator's preference, in order) and relays the node found by itself
  (AutoRelay: peers that speak the hop protocol, community relays from the
  DHT), offered with :meth:`ReservationSchedule.offer`.
* Hold up to ``want`` reservations on the best candidates: configured ones
  first, in order; then relays that can carry data (community relays: no
  tight per-circuit limit), then by round-trip time, then first seen.
* Upgrade: while ``want`` are held and a candidate of a better class (a
  configured relay, or one that carries data, over one that does not) is
  free, try it as one extra; once it is reserved, the worst held relay is
  stopped. Codes and the DHT then name relays that carry data.
* A discovered candidate that fails ``MAX_FAILURES`` times in a row is
  forgotten for ``FORGET_FOR`` seconds; at most ``MAX_CANDIDATES`` are kept
  (the worst discovered ones make room).
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
    "MAX_CANDIDATES",
    "MAX_FAILURES",
    "FORGET_FOR",
    "ReservationSchedule",
    "SILENT_GRACE",
    "accept_expiry",
    "stop_waiting_for_relays",
    "backoff",
]

BACKOFF_MIN = 1.0
BACKOFF_MAX = 60.0
MAX_EXPIRY = 24 * 3600  # never trust an expiry further out than this
MIN_REFRESH = 0.5  # seconds between two RESERVEs on one relay, whatever the expiry
IDLE_RECHECK = 30.0  # with nothing to wait for, look again after this long
MAX_CANDIDATES = 64  # relays remembered (configured ones always are)
MAX_FAILURES = 3  # failures in a row before a discovered relay is forgotten
FORGET_FOR = 600.0  # seconds a forgotten relay's offers are ignored


#: Seconds a code waits for a configured relay that has not even connected.
SILENT_GRACE = 4.0


def stop_waiting_for_relays(*, waited: float, any_connected: bool, all_failing: bool) -> bool:
    """Whether a new code should stop waiting for its first reservation: every
    configured relay keeps failing, or none has connected within
    ``SILENT_GRACE`` seconds. A relay host that is gone drops the dial's
    packets rather than refusing them, so its dial takes its whole 10 s
    timeout; a relay that answers at all connects within a few round trips
    (~1 s at 200 ms), and is then waited for until the reservation comes.
    The relays are still retried; only the code stops waiting for them."""
    return all_failing or (waited >= SILENT_GRACE and not any_connected)


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
    start: tuple[str, ...]  # relays (peer IDs) to start holding now, best first
    wake_at: float  # monotonic time to plan again, unless a hold ends first
    stop: tuple[str, ...] = ()  # held relays to let go (an upgrade replaced them)


@dataclass
class _Candidate:
    configured: int | None  # index in the configured list; None: found by the node
    carries_data: bool = False
    rtt: float | None = None
    seen: int = 0  # order of first offer


class ReservationSchedule:
    """What the client should be doing about reservations, given what happened."""

    def __init__(self, relays: Sequence[str], want: int) -> None:
        self.relays = tuple(dict.fromkeys(relays))
        self.want = max(1, want)
        self.holding: set[str] = set()  # a hold task runs (connecting, reserved or refreshing)
        self.reserved_on: set[str] = set()  # holds that have a reservation now
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}
        self._cands: dict[str, _Candidate] = {r: _Candidate(i, seen=i) for i, r in enumerate(self.relays)}
        self._seen = len(self.relays)
        self._forgotten: dict[str, float] = {}

    # -- candidates ----------------------------------------------------------

    def offer(self, relay: str, now: float, *, carries_data: bool | None = None, rtt: float | None = None) -> bool:
        """A relay the node found (or news about one): True if the plan may change."""
        c = self._cands.get(relay)
        if c is None:
            if self._forgotten.get(relay, -1.0) > now:
                return False
            self._forgotten.pop(relay, None)
            c = self._cands[relay] = _Candidate(None, seen=self._seen)
            self._seen += 1
            changed = True
        else:
            changed = False
        if carries_data is not None and carries_data != c.carries_data:
            c.carries_data, changed = carries_data, True
        if rtt is not None:
            changed = changed or c.rtt is None
            c.rtt = rtt
        self._trim()
        return changed and relay in self._cands

    def candidates(self) -> list[str]:
        """Every remembered relay, best first."""
        return sorted(self._cands, key=self._rank)

    def _rank(self, relay: str) -> tuple[int, int, float, int]:
        c = self._cands[relay]
        if c.configured is not None:
            return (0, c.configured, 0.0, c.seen)
        return (1 if c.carries_data else 2, 0, c.rtt if c.rtt is not None else 1e9, c.seen)

    def _class(self, relay: str) -> int:
        return self._rank(relay)[0]

    def _trim(self) -> None:
        found = [r for r in self.candidates() if self._cands[r].configured is None and r not in self.holding]
        excess = len(self._cands) - MAX_CANDIDATES - len(self.relays)
        for r in reversed(found):
            if excess <= 0:
                break
            del self._cands[r]
            excess -= 1

    # -- the plan ------------------------------------------------------------

    def plan(self, now: float) -> Plan:
        """Holds to start (the best free candidates, until ``want`` are held, plus
        one upgrade) and holds to stop (the worst, once an upgrade is reserved)."""
        start: list[str] = []
        wake_at = now + IDLE_RECHECK
        free: list[str] = []
        for relay in self.candidates():
            if relay in self.holding:
                continue
            at = self.retry_at.get(relay, 0.0)
            if at > now:
                wake_at = min(wake_at, at)
                continue
            free.append(relay)
        while free and len(self.holding) < self.want:
            relay = free.pop(0)
            self.holding.add(relay)
            start.append(relay)
        held = sorted(self.holding, key=self._rank)
        worst = held[-1] if held else None
        if (
            free
            and worst is not None
            and len(self.holding) == self.want
            and self.reserved_on >= self.holding
            and self._class(free[0]) < self._class(worst)
        ):
            self.holding.add(free[0])  # one extra: an upgrade in flight
            start.append(free[0])
        stop: tuple[str, ...] = ()
        if len(self.reserved_on) > self.want:
            stop = (sorted(self.reserved_on, key=self._rank)[-1],)
        return Plan(tuple(start), wake_at, stop)

    # -- what happened -------------------------------------------------------

    def reserved(self, relay: str, expire: int, wall_now: float) -> float:
        """A reservation was granted (or refreshed) until ``expire``: seconds
        until the next refresh."""
        self.failures.pop(relay, None)
        self.retry_at.pop(relay, None)
        if relay in self.holding:
            self.reserved_on.add(relay)
        return max(MIN_REFRESH, (expire - wall_now) / 2)

    def failed(self, relay: str, now: float) -> float:
        """A hold on ``relay`` failed: seconds until it may be tried again."""
        fails = self.failures.get(relay, 0) + 1
        self.failures[relay] = fails
        delay = backoff(fails)
        self.retry_at[relay] = now + delay
        c = self._cands.get(relay)
        if c is not None and c.configured is None and fails >= MAX_FAILURES:
            del self._cands[relay]  # found by us, and it keeps failing: forget it for a while
            self._forgotten[relay] = now + FORGET_FOR
            if len(self._forgotten) > 4 * MAX_CANDIDATES:  # bounded: drop what has expired
                self._forgotten = {r: t for r, t in self._forgotten.items() if t > now}
            self.failures.pop(relay, None)
            self.retry_at.pop(relay, None)
        return delay

    def configured(self, relay: str) -> bool:
        """Did a person give this relay (``--relay``), rather than the node find it?"""
        c = self._cands.get(relay)
        return c is not None and c.configured is not None

    def worth_a_warning(self, relay: str) -> bool:
        """After :meth:`failed`: is this a failure a person should be told
        of? A relay they configured that just started failing; not each
        retry after that (``-v`` shows those), and not the relays the node
        found by itself, which come and go on the public network."""
        return self.configured(relay) and self.failures.get(relay) == 1

    def configured_all_failing(self, tries: int = 2) -> bool:
        """Every configured relay failed its last ``tries`` attempts in a row
        and none holds a reservation: a code need not wait for them (they
        are still retried). Two, not one: a relay that refused once while
        starting up is given its retry a second later."""
        configured = [r for r, c in self._cands.items() if c.configured is not None]
        return bool(configured) and not self.reserved_on and all(self.failures.get(r, 0) >= tries for r in configured)

    def released(self, relay: str) -> None:
        """The hold on ``relay`` ended (after ``failed``, cancelled, or stopped)."""
        self.holding.discard(relay)
        self.reserved_on.discard(relay)
