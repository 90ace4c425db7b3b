"""The relay's resource policy: reservations and circuits (pure, no trio).

A :class:`ReservationBook` answers "may this peer reserve?" and "may this
circuit open?" with a spec status code and a one-line reason naming the
command-line flag that set the limit, so operators can see which knob to turn.
Time is passed in (``now``, monotonic seconds); the trio adapter in
``relay.server`` owns the clock, the connections and the logging.

A reservation belongs to one connection of one peer (as in rust-libp2p): a
RESERVE on the connection that already holds one refreshes it and never counts
twice; the same peer on another connection counts against the per-peer limit.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from p2pshare.node.circuit.wire import Limit, Status

__all__ = ["RelayLimits", "RelayStats", "Decision", "ReservationBook", "ReservationInfo", "TokenBucket"]


@dataclass(frozen=True)
class RelayLimits:
    """Every limit the relay enforces. ``circuit_duration``/``circuit_data``:
    0 means unlimited (the spec's meaning). Defaults suit a self-hosted relay
    for file transfer: transfers are long and large, so circuits are not cut
    by default (go/rust/js cut at 2 min / 128 KiB, which no file survives);
    counts bound the resources instead."""

    max_reservations: int = 128
    max_reservations_per_peer: int = 4
    max_reservations_per_ip: int = 8
    reservation_ttl: int = 3600  # seconds
    max_circuits_per_reservation: int = 8
    max_circuits: int = 64
    #: Circuits one source may hold open at once (its peer ID; its IP address,
    #: where identities cost nothing), so no one source takes every slot.
    max_circuits_per_peer: int = 8
    max_circuits_per_ip: int = 16
    #: Circuits one source address may hold to one target: eight identities
    #: on one address held all eight circuits of a sharer's reservation and
    #: kept it unreachable (a hostile-peer review). A receiver needs one, a
    #: household behind one NAT a few; one source peer gets two at most.
    max_circuits_per_ip_to_target: int = 4
    circuit_duration: int = 0  # seconds, 0 = unlimited
    circuit_data: int = 0  # bytes per direction, 0 = unlimited
    circuit_rate: int = 0  # bytes per second per direction of one circuit, 0 = unlimited
    total_rate: int = 0  # bytes per second over all circuits and directions, 0 = unlimited
    #: Seconds a circuit may carry no byte either way before it is ended, 0 =
    #: never: long enough for a person answering a prompt mid-transfer, short
    #: enough that forgotten or parked circuits give their slots back.
    circuit_idle: int = 1800

    def __post_init__(self) -> None:
        for name in (
            "max_reservations",
            "max_reservations_per_peer",
            "max_reservations_per_ip",
            "reservation_ttl",
            "max_circuits_per_reservation",
            "max_circuits",
            "max_circuits_per_peer",
            "max_circuits_per_ip",
            "max_circuits_per_ip_to_target",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 <= self.circuit_duration < 1 << 32:
            raise ValueError("circuit_duration must be between 0 and 2^32-1 seconds")
        if not 0 <= self.circuit_data < 1 << 64:
            raise ValueError("circuit_data must be between 0 and 2^64-1 bytes")
        if self.circuit_rate < 0 or self.total_rate < 0:
            raise ValueError("rates cannot be negative")
        if self.circuit_idle < 0:
            raise ValueError("circuit_idle cannot be negative")

    def wire_limit(self) -> Limit | None:
        """The ``Limit`` field to send; omitted when nothing is limited, which
        tells go/js clients the connection is not "limited" (they refuse
        most protocols over limited connections)."""
        limit = Limit(self.circuit_duration, self.circuit_data)
        return None if limit.unlimited else limit


@dataclass
class ReservationInfo:
    peer: str
    conn: Hashable
    ip: str | None
    expires: float  # monotonic
    circuits: int = 0


@dataclass(frozen=True)
class Decision:
    status: Status
    reason: str = ""  # empty when OK
    ttl: int = 0  # seconds of validity granted by a reservation
    refreshed: bool = False
    #: Reservations this call removed from the book (expired ones): the
    #: caller ends what they held, such as their peer's protection.
    dropped: tuple[ReservationInfo, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == Status.OK


@dataclass
class _Circuit:
    src: str
    dst: str
    ip: str | None  # the source's


@dataclass
class ReservationBook:
    limits: RelayLimits
    _by_conn: dict[Hashable, ReservationInfo] = field(default_factory=dict)
    _circuits: dict[int, _Circuit] = field(default_factory=dict)
    _next_circuit: int = 0

    # -- reservations ----------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_conn)

    def reserve(self, peer: str, conn: Hashable, ip: str | None, now: float) -> Decision:
        """Grant, refresh or refuse a reservation for ``peer`` on ``conn``.

        Expired reservations are dropped first and returned in the
        decision's ``dropped`` (whatever the answer), so the caller can
        end what they held.
        """
        dropped = self.expire(now)
        lim = self.limits
        existing = self._by_conn.get(conn)
        if existing is not None and existing.peer == peer:
            existing.expires = now + lim.reservation_ttl
            existing.ip = ip
            return Decision(Status.OK, ttl=lim.reservation_ttl, refreshed=True, dropped=tuple(dropped))
        if existing is not None:  # a connection never changes peer; be safe
            dropped.append(self._by_conn.pop(conn))
        others = list(self._by_conn.values())
        if len(others) >= lim.max_reservations:
            return Decision(
                Status.RESERVATION_REFUSED,
                f"{len(others)} reservations in use (--max-reservations {lim.max_reservations})",
                dropped=tuple(dropped),
            )
        same_peer = sum(1 for r in others if r.peer == peer)
        if same_peer >= lim.max_reservations_per_peer:
            return Decision(
                Status.RESERVATION_REFUSED,
                f"peer holds {same_peer} reservations (--max-reservations-per-peer {lim.max_reservations_per_peer})",
                dropped=tuple(dropped),
            )
        if ip is not None:
            same_ip = sum(1 for r in others if r.ip == ip)
            if same_ip >= lim.max_reservations_per_ip:
                return Decision(
                    Status.RESERVATION_REFUSED,
                    f"{same_ip} reservations from {ip} (--max-reservations-per-ip {lim.max_reservations_per_ip})",
                    dropped=tuple(dropped),
                )
        self._by_conn[conn] = ReservationInfo(peer, conn, ip, now + lim.reservation_ttl)
        return Decision(Status.OK, ttl=lim.reservation_ttl, dropped=tuple(dropped))

    def expire(self, now: float) -> list[ReservationInfo]:
        """Drop and return the reservations whose time is up."""
        gone = [r for r in self._by_conn.values() if r.expires <= now]
        for r in gone:
            del self._by_conn[r.conn]
        return gone

    def drop_connection(self, conn: Hashable) -> ReservationInfo | None:
        """The connection closed: its reservation ends with it (spec)."""
        return self._by_conn.pop(conn, None)

    def reservations_of(self, peer: str, now: float) -> list[ReservationInfo]:
        """Live reservations of ``peer``, newest expiry first."""
        found = [r for r in self._by_conn.values() if r.peer == peer and r.expires > now]
        return sorted(found, key=lambda r: r.expires, reverse=True)

    def connections(self) -> list[Hashable]:
        return list(self._by_conn)

    # -- circuits --------------------------------------------------------

    @property
    def circuit_count(self) -> int:
        return len(self._circuits)

    def circuits_to(self, dst: str) -> int:
        return sum(1 for c in self._circuits.values() if c.dst == dst)

    def open_circuit(self, src: str, dst: str, now: float, ip: str | None = None) -> tuple[Decision, int | None]:
        """Admit a circuit ``src`` (from ``ip``) → ``dst``; the id is for :meth:`close_circuit`."""
        if src == dst:
            return Decision(Status.PERMISSION_DENIED, "a peer cannot relay to itself"), None
        if not self.reservations_of(dst, now):
            return Decision(Status.NO_RESERVATION, "target has no reservation"), None
        lim = self.limits
        if len(self._circuits) >= lim.max_circuits:
            return (
                Decision(
                    Status.RESOURCE_LIMIT_EXCEEDED,
                    f"{len(self._circuits)} circuits open (--max-circuits {lim.max_circuits})",
                ),
                None,
            )
        to_dst = self.circuits_to(dst)
        if to_dst >= lim.max_circuits_per_reservation:
            return (
                Decision(
                    Status.RESOURCE_LIMIT_EXCEEDED,
                    f"target has {to_dst} circuits open "
                    f"(--max-circuits-per-reservation {lim.max_circuits_per_reservation})",
                ),
                None,
            )
        # One source holds at most a few of a target's circuits (see the limit).
        pair_peer = sum(1 for c in self._circuits.values() if c.dst == dst and c.src == src)
        pair_ip = sum(1 for c in self._circuits.values() if ip is not None and c.dst == dst and c.ip == ip)
        if pair_peer >= CIRCUITS_PER_PEER_TO_TARGET or pair_ip >= lim.max_circuits_per_ip_to_target:
            return (
                Decision(
                    Status.RESOURCE_LIMIT_EXCEEDED,
                    f"source already has {pair_ip or pair_peer} circuits open to this target",
                ),
                None,
            )
        from_src = sum(1 for c in self._circuits.values() if c.src == src)
        if from_src >= lim.max_circuits_per_peer:
            return (
                Decision(
                    Status.RESOURCE_LIMIT_EXCEEDED,
                    f"source has {from_src} circuits open (--max-circuits-per-peer {lim.max_circuits_per_peer})",
                ),
                None,
            )
        from_ip = sum(1 for c in self._circuits.values() if ip is not None and c.ip == ip)
        if from_ip >= lim.max_circuits_per_ip:
            return (
                Decision(
                    Status.RESOURCE_LIMIT_EXCEEDED,
                    f"{from_ip} circuits open from {ip} (--max-circuits-per-ip {lim.max_circuits_per_ip})",
                ),
                None,
            )
        self._next_circuit += 1
        self._circuits[self._next_circuit] = _Circuit(src, dst, ip)
        return Decision(Status.OK), self._next_circuit

    def close_circuit(self, circuit_id: int) -> None:
        self._circuits.pop(circuit_id, None)


#: Circuits one source peer may hold to one target (a receiver and its reconnect).
CIRCUITS_PER_PEER_TO_TARGET = 2


class TokenBucket:
    """A byte-rate cap (pure): ``take(n, now)`` books ``n`` bytes and says how
    long to wait before sending them so the average stays at ``rate``.

    A community relay caps each circuit (so one transfer cannot take the
    whole uplink) and all circuits together (so relaying never starves its
    operator). Bursts up to ``burst`` bytes pass at once; debt is paid by
    waiting, never by dropping bytes (TCP under the circuit needs them all).
    """

    def __init__(self, rate: int, burst: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate // 4, 64 * 1024))
        self._tokens = self.burst
        self._at: float | None = None

    def take(self, n: int, now: float) -> float:
        """Book ``n`` bytes at ``now``; seconds to wait before sending them (0: at once)."""
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


@dataclass
class RelayStats:
    """What a relay granted, refused and carried since it started (totals;
    the hop service counts, ``relay/stats.py`` reports them per period)."""

    reservations_granted: int = 0
    reservations_refused: int = 0
    circuits_opened: int = 0
    circuits_refused: int = 0
    bytes_relayed: int = 0
