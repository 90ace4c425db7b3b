"""libp2p mDNS discovery, the decisions: what to ask, what to answer, whom we know.

The libp2p spec (``discovery/mdns.md``): a peer asks for PTR records of
``_p2p._udp.local``; each peer answers with a PTR to a random name of its
own (so the LAN does not learn its peer ID from the name) and TXT records at
that name, one ``dnsaddr=<multiaddr>/p2p/<id>`` per address.

This module takes ``now`` and returns bytes to send or peers learned; the
trio side (:mod:`.service`) only moves datagrams. It announces LAN addresses
only (private ranges: never loopback, link-local or public ones, which are
another discovery's business), answers at most once per
:data:`ANSWER_INTERVAL` (answers are multicast, so every asker hears one
answer; a flood of queries costs one answer a second), and remembers at most
:data:`MAX_PEERS` peers for at most :data:`MAX_TTL` seconds each.
"""

from __future__ import annotations

import ipaddress
import secrets
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from p2pshare.sharecode.multiaddrs import IpClass, ip_class, ip_text, is_circuit, trailing_peer, with_peer

from . import wire

__all__ = [
    "ANSWER_INTERVAL",
    "MAX_PEERS",
    "SERVICE",
    "Found",
    "MdnsCore",
    "is_lan_addr",
    "random_peer_name",
]

SERVICE = "_p2p._udp.local"
TTL = 120  # seconds, as the other libp2p implementations announce
MAX_TTL = 600  # a peer claiming longer is remembered this long at most
MAX_PEERS = 64  # peers remembered at once; the stalest goes first
MAX_ADDRS_PER_PEER = 8
MAX_ADDR_CHARS = 240  # a TXT string holds 255 bytes, "dnsaddr=" included
ANSWER_INTERVAL = 1.0  # seconds between two answers (RFC 6762 §6: once per second)
#: Seconds after start at which we ask; then every QUERY_INTERVAL. Early
#: repeats cover a lost first datagram and peers that start just after us.
QUERY_SCHEDULE = (0.0, 1.0, 3.0)
QUERY_INTERVAL = 60.0
_NAME_ALPHABET = string.ascii_lowercase + string.digits
_DNSADDR = b"dnsaddr="


def random_peer_name(randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    """The spec's peer name: 32 to 63 random characters, a fresh one per run."""
    length = 32 + randbelow(32)
    return "".join(_NAME_ALPHABET[randbelow(len(_NAME_ALPHABET))] for _ in range(length))


def is_lan_addr(addr: str) -> bool:
    """A direct address in a private range: reachable on a LAN, and only there."""
    if is_circuit(addr):
        return False
    ip = ip_text(addr)
    if ip is None or ip_class(ip) is not IpClass.PRIVATE:
        return False
    parsed = ipaddress.ip_address(ip)
    return not (parsed.is_unspecified or parsed.is_multicast or parsed.is_reserved)


@dataclass(frozen=True)
class Found:
    """A peer an answer named, with its LAN addresses (each ending ``/p2p/<id>``)."""

    peer_id: str
    addrs: tuple[str, ...]


@dataclass
class _Known:
    addrs: tuple[str, ...]
    expires: float


class MdnsCore:
    """One node's mDNS state. ``addrs()`` gives our current listen addresses."""

    def __init__(
        self,
        peer_id: str,
        addrs: Callable[[], Sequence[str]],
        now: float,
        *,
        peer_name: str | None = None,
    ) -> None:
        self.peer_id = peer_id
        self._addrs = addrs
        self.name = f"{peer_name or random_peer_name()}.{SERVICE}"
        self._start = now
        self._queries_sent = 0
        self._last_answer = -ANSWER_INTERVAL
        self._known: dict[str, _Known] = {}
        #: Counters for logs and tests.
        self.dropped_packets = 0
        self.suppressed_answers = 0

    # -- what we send ------------------------------------------------------

    def lan_addrs(self) -> list[str]:
        """Our addresses worth announcing on the LAN, each with our /p2p/ ID."""
        out: list[str] = []
        for addr in self._addrs():
            full = with_peer(addr, self.peer_id) if trailing_peer(addr) is None else addr
            if full and is_lan_addr(full) and len(full) <= MAX_ADDR_CHARS and full not in out:
                out.append(full)
        return out[:MAX_ADDRS_PER_PEER]

    def next_query_at(self) -> float:
        n = self._queries_sent
        if n < len(QUERY_SCHEDULE):
            return self._start + QUERY_SCHEDULE[n]
        return self._start + QUERY_SCHEDULE[-1] + QUERY_INTERVAL * (n - len(QUERY_SCHEDULE) + 1)

    def query(self, now: float) -> bytes | None:
        """The query to send now, if one is due (then the next is scheduled)."""
        if now < self.next_query_at():
            return None
        self._queries_sent += 1
        return wire.encode(wire.Message(questions=(wire.Question(SERVICE, wire.RecordType.PTR),)))

    def announcement(self) -> bytes | None:
        """An unsolicited answer (sent once, at start): peers already running
        learn of us without waiting for their next query. Not counted against
        the answer rate, which is there for queries from the network: a peer
        that starts right after us and asks is answered at once."""
        return self._response()

    def _answer(self, now: float) -> bytes | None:
        if now - self._last_answer < ANSWER_INTERVAL:
            self.suppressed_answers += 1
            return None
        response = self._response()
        if response is not None:
            self._last_answer = now
        return response

    def _response(self) -> bytes | None:
        addrs = self.lan_addrs()
        if not addrs:
            return None  # nothing a LAN peer could dial
        ptr = wire.Record(SERVICE, wire.RecordType.PTR, TTL, target=self.name)
        txts = tuple(wire.Record(self.name, wire.RecordType.TXT, TTL, texts=(_DNSADDR + a.encode(),)) for a in addrs)
        return wire.encode(wire.Message(flags=wire.FLAG_RESPONSE, answers=(ptr,), additionals=txts))

    # -- what we hear ------------------------------------------------------

    def on_packet(self, data: bytes, now: float) -> tuple[bytes | None, list[Found]]:
        """(our answer to send, or None; peers this packet told us of, new or changed)."""
        try:
            msg = wire.decode(data)
        except wire.WireError:
            self.dropped_packets += 1
            return None, []
        if not msg.is_response:
            asked = any(
                q.name == SERVICE and q.qtype in (wire.RecordType.PTR, wire.RecordType.ANY) for q in msg.questions
            )
            return (self._answer(now) if asked else None), []
        return None, self._learn(msg, now)

    def _learn(self, msg: wire.Message, now: float) -> list[Found]:
        records = (*msg.answers, *msg.additionals)
        names = {r.target: r.ttl for r in records if r.rtype == wire.RecordType.PTR and r.name == SERVICE}
        names.pop(self.name, None)  # our own answer, looped back
        by_peer: dict[str, list[str]] = {}
        ttls: dict[str, int] = {}
        for rec in records:
            if rec.rtype != wire.RecordType.TXT or rec.name not in names:
                continue
            for text in rec.texts:
                addr = _dnsaddr(text)
                peer = trailing_peer(addr) if addr else None
                if addr is None or peer is None or peer == self.peer_id or not is_lan_addr(addr):
                    continue
                got = by_peer.setdefault(peer, [])
                if addr not in got and len(got) < MAX_ADDRS_PER_PEER:
                    got.append(addr)
                ttls[peer] = min(rec.ttl, names[rec.name], MAX_TTL)
        found: list[Found] = []
        for peer, addrs in list(by_peer.items())[:MAX_PEERS]:
            if ttls[peer] == 0:  # a goodbye (RFC 6762 §10.1)
                self._known.pop(peer, None)
                continue
            if self._remember(peer, tuple(addrs), now + ttls[peer]):
                found.append(Found(peer, tuple(addrs)))
        return found

    def _remember(self, peer: str, addrs: tuple[str, ...], expires: float) -> bool:
        """Store ``peer``; True when it is new, changed or had expired."""
        self.expire(expires - MAX_TTL)  # best effort: drop what is surely stale
        old = self._known.get(peer)
        self._known[peer] = _Known(addrs, expires)
        if old is None and len(self._known) > MAX_PEERS:
            stalest = min(self._known, key=lambda p: self._known[p].expires)
            del self._known[stalest]
            if stalest == peer:
                return False
        return old is None or old.addrs != addrs or old.expires < expires - TTL

    def expire(self, now: float) -> None:
        for peer in [p for p, k in self._known.items() if k.expires <= now]:
            del self._known[peer]

    def addrs_of(self, peer_id: str, now: float) -> list[str]:
        """The LAN addresses ``peer_id`` announced, while they are fresh."""
        known = self._known.get(peer_id)
        if known is None or known.expires <= now:
            return []
        return list(known.addrs)

    def peers(self, now: float) -> list[Found]:
        return [Found(p, k.addrs) for p, k in self._known.items() if k.expires > now]


def _dnsaddr(text: bytes) -> str | None:
    if not text.startswith(_DNSADDR) or len(text) > 255:
        return None
    try:
        addr = text[len(_DNSADDR) :].decode("ascii")
    except UnicodeDecodeError:
        return None
    return addr if addr.startswith("/") and len(addr) <= MAX_ADDR_CHARS else None
