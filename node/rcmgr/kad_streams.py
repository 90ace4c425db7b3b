"""Which inbound Kademlia streams a DHT server serves (pure: no trio, no libp2p).

Fed by ``node/_libp2p_kad_streams.py``.

py-libp2p serves 12 KAD streams at once and resets the 13th. With our cap
of 4 per peer and an idle deadline pushed back by every answer, 3 throwaway
identities holding 4 streams each, with one request every 8 s, shut a DHT
server for everyone: every honest request was reset, and a sharer and a
receiver that used it as their bootstrap node could not exchange a short
code (a hostile-peer review, stop 43). Idle streams cost no CPU, so the table
is larger now (:data:`TOTAL`), one address group (an IPv4 address, an IPv6
/64) holds a part of it, and a full table still takes a newcomer: in place
of a stream that is waiting for its next request, from the source holding
the most streams, the longest-waiting first. A stream at work on a request
is never ended for another; it keeps its slot only until the idle deadline
the adapter enforces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = ["TOTAL", "PER_PEER", "PER_GROUP", "Admission", "KadInbound"]

#: Streams served at once (py-libp2p: 12, all of them resettable by nobody).
TOTAL = 32
#: Streams one peer may have served at once.
PER_PEER = 4
#: Streams one address group may have served at once (peer IDs cost nothing).
PER_GROUP = 8


@dataclass
class _Stream:
    peer: str
    group: str | None  # None: no address known, or loopback (not counted per address)
    since: float  # opened, or its last answer
    working: bool = False  # a whole request arrived and is not answered yet


@dataclass(frozen=True)
class Admission:
    """``admitted``: serve the new stream; ``evict``: first end this one (its key)."""

    admitted: bool
    evict: Hashable | None = None


class KadInbound:
    """The inbound KAD streams being served, by key (one per stream)."""

    def __init__(self, total: int = TOTAL, per_peer: int = PER_PEER, per_group: int = PER_GROUP) -> None:
        self.total = total
        self.per_peer = per_peer
        self.per_group = per_group
        self._streams: dict[Hashable, _Stream] = {}
        self._peers: Counter[str] = Counter()
        self._groups: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._streams

    def admit(self, key: Hashable, peer: str, group: str | None, now: float) -> Admission:
        """May a new stream from ``peer`` (in address ``group``) be served?"""
        if self._peers[peer] >= self.per_peer or (group is not None and self._groups[group] >= self.per_group):
            return Admission(False)
        victim = None
        if len(self._streams) >= self.total:
            victim = self._victim()
            if victim is None:
                return Admission(False)  # every stream is at work: the newcomer waits for none
            self.remove(victim)
        self._streams[key] = _Stream(peer, group, now)
        self._peers[peer] += 1
        if group is not None:
            self._groups[group] += 1
        return Admission(True, victim)

    def request(self, key: Hashable) -> None:
        """A whole request arrived on ``key``: at work until it is answered."""
        stream = self._streams.get(key)
        if stream is not None:
            stream.working = True

    def waiting(self, key: Hashable) -> None:
        """``key``'s handler reads its next request: no longer at work, even
        if it sent no answer (a message type it does not know). Its wait
        counts from its last answer, or its opening."""
        stream = self._streams.get(key)
        if stream is not None:
            stream.working = False

    def answered(self, key: Hashable, now: float) -> None:
        """``key`` answered (or dropped, for ADD_PROVIDER) its request: waiting again."""
        stream = self._streams.get(key)
        if stream is not None:
            stream.working = False
            stream.since = now

    def remove(self, key: Hashable) -> None:
        """``key`` ended (or was evicted: then a second remove does nothing)."""
        stream = self._streams.pop(key, None)
        if stream is None:
            return
        self._peers[stream.peer] -= 1
        if not self._peers[stream.peer]:
            del self._peers[stream.peer]
        if stream.group is not None:
            self._groups[stream.group] -= 1
            if not self._groups[stream.group]:
                del self._groups[stream.group]

    def _victim(self) -> Hashable | None:
        """The waiting stream whose source holds the most streams (its address
        group, else its peer), the one waiting longest among them."""
        best: tuple[int, float] | None = None
        victim: Hashable | None = None
        for key, s in self._streams.items():
            if s.working:
                continue
            held = self._groups[s.group] if s.group is not None else self._peers[s.peer]
            rank = (held, -s.since)
            if best is None or rank > best:
                best, victim = rank, key
        return victim
