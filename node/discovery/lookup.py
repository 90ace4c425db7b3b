"""The iterative Kademlia lookup as a pure state machine (no trio, no I/O).

The adapter asks :meth:`Lookup.next_queries` whom to ask, sends the RPCs
(FIND_NODE or GET_PROVIDERS) and reports each answer with
:meth:`Lookup.on_response` or :meth:`Lookup.on_failure`. The lookup ends
when the ``k`` closest peers it has heard of (failed ones excluded) have all
answered, as the libp2p Kademlia spec says, or when it runs out of peers or
of its query budget. Peer IDs are raw bytes (the multihash); addresses are
opaque strings here.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .keys import kad_distance, kad_target

__all__ = [
    "K",
    "ALPHA",
    "MAX_QUERIES",
    "Candidate",
    "Lookup",
    "LookupStats",
    "STALE_AFTER",
    "FORGET_AFTER",
    "stale_to_drop",
]

K = 20  # replication parameter, per the spec
# In-flight RPCs per lookup. The spec's paper value is 3 and go uses 10; 5
# keeps lookups through dead peers quick without flooding a 2-core machine.
ALPHA = 5
MAX_QUERIES = 120  # hard bound on RPCs per lookup
_MAX_ADDRS = 32  # per candidate, across all answers


class _State(enum.Enum):
    NEW = "new"
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"


@dataclass
class Candidate:
    """A peer the lookup has heard of."""

    peer_id: bytes
    addrs: list[str]
    distance: int
    hops: int  # 1 for peers we started from, n+1 for peers a hop-n peer named
    state: _State = _State.NEW


@dataclass(frozen=True)
class LookupStats:
    """What one lookup did; for logs, tests and measurements."""

    queried: int
    answered: int
    failed: int
    max_hops: int  # deepest hop that answered
    first_hit_hop: int  # hop of the first peer whose answer held a result; 0 = none
    entries: int  # raw result entries received (duplicates included)
    results: int  # distinct results
    seconds: float


#: Pauses before looking again after a lookup that failed transiently (s).
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)


def worth_another_look(stats: Sequence[LookupStats]) -> bool:
    """After lookups (one per key) that found nothing: look again?

    Yes when a peer it asked failed (an RPC that timed out under load, a
    connection that just dropped): that is not "nobody has it". No when
    every peer asked answered without a result (a wrong number should fail
    at once), or when there was nobody to ask.
    """
    return all(s.results == 0 for s in stats) and any(s.failed > 0 for s in stats)


def rejoin_needed(table_size: int, self_lookup: LookupStats | None) -> bool:
    """Bootstrap again? When the routing table is empty, or when the
    refresh's self-lookup asked peers and none answered: the table then
    holds only peers that are gone (a failed query no longer removes the
    last one, so an empty table is no longer the only sign)."""
    if table_size == 0:
        return True
    return self_lookup is not None and self_lookup.queried > 0 and self_lookup.answered == 0


def retry_delay(attempt: int) -> float:
    """The pause before look number ``attempt + 1`` (``attempt`` >= 1)."""
    return RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1]


class Lookup:
    """Closest-peer lookup towards ``key`` (sha256 distance, as the spec says)."""

    def __init__(
        self,
        key: bytes,
        self_id: bytes,
        *,
        k: int = K,
        alpha: int = ALPHA,
        max_queries: int = MAX_QUERIES,
    ) -> None:
        self.key = key
        self._target = kad_target(key)
        self._self_id = self_id
        self.k = k
        self.alpha = alpha
        self.max_queries = max_queries
        self._peers: dict[bytes, Candidate] = {}
        self.queried = 0
        self.answered = 0
        self.failed = 0
        self.max_hops = 0
        self.first_hit_hop = 0

    # -- feeding -------------------------------------------------------

    def add_peers(self, peers: Iterable[tuple[bytes, Sequence[str]]], *, hops: int = 1) -> None:
        """Peers to consider (seeds at ``hops=1``); known peers gain addresses."""
        for peer_id, addrs in peers:
            if peer_id == self._self_id or not peer_id:
                continue
            cand = self._peers.get(peer_id)
            if cand is None:
                dist = kad_distance(self._target, peer_id)
                self._peers[peer_id] = Candidate(peer_id, list(addrs)[:_MAX_ADDRS], dist, hops)
                continue
            fresh = [a for a in addrs if a not in cand.addrs][: _MAX_ADDRS - len(cand.addrs)]
            cand.addrs.extend(fresh)
            if cand.state is _State.FAILED and fresh:
                cand.state = _State.NEW  # e.g. a restarted peer, now on another port
                cand.hops = hops
            elif cand.state is _State.NEW and hops < cand.hops:
                cand.hops = hops

    def on_response(self, peer_id: bytes, closer: Iterable[tuple[bytes, Sequence[str]]], *, hit: bool = False) -> None:
        """``peer_id`` answered, naming ``closer`` peers; ``hit``: it had results."""
        cand = self._peers.get(peer_id)
        if cand is None or cand.state is not _State.WAITING:
            return
        cand.state = _State.DONE
        self.answered += 1
        self.max_hops = max(self.max_hops, cand.hops)
        if hit and not self.first_hit_hop:
            self.first_hit_hop = cand.hops
        self.add_peers(closer, hops=cand.hops + 1)

    def on_failure(self, peer_id: bytes) -> None:
        """``peer_id`` could not be reached or gave no valid answer."""
        cand = self._peers.get(peer_id)
        if cand is not None and cand.state is _State.WAITING:
            cand.state = _State.FAILED
            self.failed += 1

    # -- driving -------------------------------------------------------

    def _closest_alive(self) -> list[Candidate]:
        alive = [c for c in self._peers.values() if c.state is not _State.FAILED]
        alive.sort(key=lambda c: c.distance)
        return alive[: self.k]

    @property
    def in_flight(self) -> int:
        return sum(1 for c in self._peers.values() if c.state is _State.WAITING)

    def next_queries(self) -> list[Candidate]:
        """Peers to ask now (marked as waiting); empty when nothing is due."""
        room = min(self.alpha - self.in_flight, self.max_queries - self.queried)
        if room <= 0:
            return []
        picked = [c for c in self._closest_alive() if c.state is _State.NEW][:room]
        for c in picked:
            c.state = _State.WAITING
        self.queried += len(picked)
        return picked

    @property
    def finished(self) -> bool:
        """No query in flight and none left to send."""
        if self.in_flight:
            return False
        if self.queried >= self.max_queries:
            return True
        return not any(c.state is _State.NEW for c in self._closest_alive())

    def closest(self, n: int | None = None) -> list[Candidate]:
        """Peers that answered, closest first (at most ``n``, default ``k``)."""
        done = [c for c in self._peers.values() if c.state is _State.DONE]
        done.sort(key=lambda c: c.distance)
        return done[: self.k if n is None else n]

    def candidate(self, peer_id: bytes) -> Candidate | None:
        return self._peers.get(peer_id)

    def stats(self, *, entries: int, results: int, seconds: float) -> LookupStats:
        return LookupStats(
            queried=self.queried,
            answered=self.answered,
            failed=self.failed,
            max_hops=self.max_hops,
            first_hit_hop=self.first_hit_hop,
            entries=entries,
            results=results,
            seconds=seconds,
        )


#: A routing-table peer not seen (added, or seen again as it answered or
#: asked us as a server) for this long, that we are not connected to and
#: whose addresses our peerstore no longer holds, is dropped: nobody asking
#: us could dial it from our answer ...
STALE_AFTER = 3600.0
#: ... and one not seen for this long is dropped whatever it had.
FORGET_AFTER = 24 * 3600.0


def stale_to_drop(
    ages: Sequence[tuple[str, float]],
    connected: Callable[[str], bool],
    has_addrs: Callable[[str], bool],
    size: int,
) -> list[str]:
    """Which routing-table peers (``ages``: peer, seconds since seen) to
    drop, keeping at least one entry in a table of ``size`` (an empty table
    finds nothing until the next bootstrap round).

    py-libp2p's table never forgets a peer: a dead one goes only when its
    full bucket cannot split and it fails a ping, and buckets split up to
    5,120 peers, while the peerstore keeps addresses for 1,000. A long-lived
    DHT server that rarely looks anything up itself (a relay doubling as
    bootstrap node) filled with peers long gone, most without an address to
    give, and sorted the whole table for each FIND_NODE (6 ms at 5,120; a
    long-uptime review, stop 43)."""
    drop = [
        peer
        for peer, age in ages
        if not connected(peer) and (age >= FORGET_AFTER or (age >= STALE_AFTER and not has_addrs(peer)))
    ]
    return drop[: max(0, size - 1)]
