"""AutoNAT client logic (pure): turn dial-back answers into a reachability verdict.

Each *round* asks up to ``servers_per_round`` servers to dial us back. A
verdict needs ``agree`` servers (default 2) to report the same thing; with
fewer configured servers than that it is reported but ``confirmed=False``.
A round that is inconclusive (servers disagree, refuse or do not answer)
keeps the previous verdict. Rounds are due ``boot_delay`` after start,
``retry_interval`` after an unknown/inconclusive round, ``refresh_interval``
after a conclusive one, and at once when our addresses change. Time is
passed in as ``now``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Reachability",
    "Outcome",
    "ServerResult",
    "Verdict",
    "AutoNATConfig",
    "ReachabilityTracker",
]


class Reachability(str, enum.Enum):
    PUBLIC = "public"
    PRIVATE = "private"
    UNKNOWN = "unknown"


class Outcome(str, enum.Enum):
    OK = "ok"  # the server opened a new connection to one of our addrs
    DIAL_ERROR = "dial_error"  # it tried and could not
    REFUSED = "refused"  # rate limit, bad request, nothing it may dial: no evidence
    FAILED = "failed"  # no answer, stream error, malformed answer: no evidence


@dataclass(frozen=True)
class ServerResult:
    server: str  # peer ID
    outcome: Outcome
    addr: str | None = None  # the address the server reached (OK only)
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    reachability: Reachability
    confirmed: bool  # backed by ``agree`` servers; False with a single server
    addrs: tuple[str, ...]  # addresses servers reached us on (public only)
    ok: int = 0
    failed: int = 0
    asked: int = 0
    at: float = 0.0


@dataclass(frozen=True)
class AutoNATConfig:
    boot_delay: float = 5.0
    retry_interval: float = 30.0
    refresh_interval: float = 60.0
    servers_per_round: int = 3
    agree: int = 2
    request_timeout: float = 20.0  # per server: dial-back timeout + slack
    #: How long one server's answer counts towards ``agree``: answers from
    #: different rounds add up (peers that can answer come and go; a node
    #: whose only useful servers are the p2pshare peers it meets would
    #: otherwise need two of them in the same round).
    evidence_ttl: float = 180.0
    #: Least seconds between rounds that a newly found server starts.
    min_gap: float = 2.0

    def __post_init__(self) -> None:
        for name in ("boot_delay", "retry_interval", "refresh_interval", "request_timeout", "evidence_ttl", "min_gap"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.servers_per_round < 1 or self.agree < 1:
            raise ValueError("servers_per_round and agree must be at least 1")


UNKNOWN = Verdict(Reachability.UNKNOWN, False, ())
#: Answers without evidence in a row after which a found server may be
#: replaced by a newly found one (``ReachabilityTracker.stale_server``).
MISSES_TO_DROP = 3


class ReachabilityTracker:
    """The verdict and the schedule of checks; no I/O."""

    def __init__(self, config: AutoNATConfig, now: float) -> None:
        self.config = config
        self.verdict: Verdict = UNKNOWN
        self._next = now + config.boot_delay
        self._cursor = 0
        self.rounds = 0
        self._last_round = float("-inf")
        #: server -> its latest conclusive answer (OK or DIAL_ERROR) and when.
        self._evidence: dict[str, tuple[ServerResult, float]] = {}
        #: server -> answers in a row that gave no evidence (failed, refused).
        self._misses: dict[str, int] = {}

    def next_check_at(self) -> float:
        return self._next

    def due(self, now: float) -> bool:
        return now >= self._next

    def addrs_changed(self, now: float) -> None:
        """Our listen/observed addresses changed: old answers no longer
        speak for them; check again right away."""
        self._evidence.clear()
        self._next = min(self._next, now)

    def interfaces_changed(self, now: float) -> None:
        """This machine's interface addresses changed (it may be on another
        network): old answers no longer speak for it; check again, at most
        every ``min_gap`` s (an interface that flaps cannot make a round
        per change)."""
        self._evidence.clear()
        self._next = min(self._next, max(now, self._last_round + self.config.min_gap))

    def server_added(self, now: float, known: int, server: str | None = None) -> None:
        """A server was found (``known`` now): while the verdict is
        unconfirmed, check soon (at most every ``min_gap`` s) when a round
        could not ask enough servers or ``server`` was never asked."""
        if self.verdict.confirmed:
            return
        untried = server is not None and server not in self._evidence and server not in self._misses
        if known <= self.config.servers_per_round or untried:
            self._next = min(self._next, max(now, self._last_round + self.config.min_gap))

    def stale_server(self, found: Sequence[str]) -> str | None:
        """Which of the servers ``found`` (met, not configured) to drop for a
        newly found one when the table is full: the one that has answered
        without evidence the most times in a row, once that is at least
        :data:`MISSES_TO_DROP` (it left, or refuses us); None: keep them
        all. Without this a long-lived node's table froze at its first
        servers, and its verdict went stale as they left."""
        worst = max(found, key=lambda s: self._misses.get(s, 0), default=None)
        if worst is None or self._misses.get(worst, 0) < MISSES_TO_DROP:
            return None
        return worst

    def forget(self, server: str) -> None:
        """``server`` is no longer asked: its answers no longer count."""
        self._evidence.pop(server, None)
        self._misses.pop(server, None)

    def pick_servers(self, candidates: Sequence[str]) -> list[str]:
        """Up to ``servers_per_round`` distinct servers, rotating between
        rounds; servers that keep answering without evidence (a js-libp2p
        v1 server that closes our connection, one that refuses) go last."""
        uniq = list(dict.fromkeys(candidates))
        if not uniq:
            return []
        start = self._cursor % len(uniq)
        rotated = uniq[start:] + uniq[:start]
        ranked = sorted(rotated, key=lambda s: min(self._misses.get(s, 0), 2))
        n = min(self.config.servers_per_round, len(uniq))
        self._cursor += n
        return ranked[:n]

    def complete_round(self, results: Sequence[ServerResult], configured: int, now: float) -> Verdict | None:
        """Fold one round in; return the new verdict when it changed."""
        self.rounds += 1
        self._last_round = now
        for r in results:
            if r.outcome in (Outcome.OK, Outcome.DIAL_ERROR):
                self._evidence[r.server] = (r, now)
                self._misses.pop(r.server, None)
            else:
                self._misses[r.server] = self._misses.get(r.server, 0) + 1
        expired = [s for s, (_, at) in self._evidence.items() if now - at > self.config.evidence_ttl]
        for s in expired:
            del self._evidence[s]
        latest = [r for r, _ in self._evidence.values()]
        ok = [r for r in latest if r.outcome is Outcome.OK]
        err = [r for r in latest if r.outcome is Outcome.DIAL_ERROR]
        need = max(1, min(self.config.agree, configured))
        reach: Reachability | None = None
        if len(ok) >= need and len(ok) > len(err):
            reach, votes = Reachability.PUBLIC, len(ok)
        elif len(err) >= need and len(err) > len(ok):
            reach, votes = Reachability.PRIVATE, len(err)
        if reach is None:
            self._next = now + self.config.retry_interval
            return None
        addrs = tuple(dict.fromkeys(r.addr for r in ok if r.addr)) if reach is Reachability.PUBLIC else ()
        new = Verdict(
            reach,
            votes >= self.config.agree,
            addrs,
            ok=len(ok),
            failed=len(err),
            asked=len(results),
            at=now,
        )
        self._next = now + self.config.refresh_interval
        old = self.verdict
        self.verdict = new
        if (old.reachability, old.confirmed, old.addrs) != (new.reachability, new.confirmed, new.addrs):
            return new
        return None
