"""relay.limits: the reservation/circuit policy (pure)."""

from __future__ import annotations

import pytest

from p2pshare.node.circuit.limits import RelayLimits, ReservationBook
from p2pshare.node.circuit.wire import Limit, Status


def book(**kw: int) -> ReservationBook:
    return ReservationBook(RelayLimits(**kw))


def test_total_reservations() -> None:
    b = book(max_reservations=2)
    assert b.reserve("A", 1, "10.0.0.1", 0).ok
    assert b.reserve("B", 2, "10.0.0.2", 0).ok
    d = b.reserve("C", 3, "10.0.0.3", 0)
    assert d.status == Status.RESERVATION_REFUSED and "--max-reservations 2" in d.reason
    assert b.reserve("A", 1, "10.0.0.1", 1).refreshed  # a refresh never counts twice


def test_per_peer_and_per_ip() -> None:
    b = book(max_reservations_per_peer=2, max_reservations_per_ip=3)
    assert b.reserve("A", 1, "10.0.0.1", 0).ok
    assert b.reserve("A", 2, "10.0.0.2", 0).ok  # same peer, another connection
    d = b.reserve("A", 3, "10.0.0.3", 0)
    assert d.status == Status.RESERVATION_REFUSED and "--max-reservations-per-peer 2" in d.reason
    assert b.reserve("B", 4, "10.0.0.9", 0).ok
    assert b.reserve("C", 5, "10.0.0.9", 0).ok
    assert b.reserve("D", 6, "10.0.0.9", 0).ok
    d = b.reserve("E", 7, "10.0.0.9", 0)
    assert d.status == Status.RESERVATION_REFUSED and "--max-reservations-per-ip 3" in d.reason


def test_ttl_expiry_and_refresh() -> None:
    b = book(reservation_ttl=10)
    assert b.reserve("A", 1, None, 0).ttl == 10
    assert b.reservations_of("A", 9.9)
    assert b.reserve("A", 1, None, 9).refreshed
    assert b.reservations_of("A", 18)
    assert [r.peer for r in b.expire(19)] == ["A"]
    assert not b.reservations_of("A", 19)
    assert len(b) == 0


def test_a_reservation_that_expires_in_reserve_is_handed_back() -> None:
    """Whatever drops a reservation returns it, so the relay can unprotect its
    peer: a RESERVE that clears out expired ones says which, refused or not."""
    b = book(reservation_ttl=10, max_reservations=1)
    assert b.reserve("A", 1, None, 0).dropped == ()
    d = b.reserve("B", 2, None, 11)
    assert d.ok and [r.peer for r in d.dropped] == ["A"]
    d = b.reserve("C", 3, None, 22)  # B expired, so C fits
    assert d.ok and [r.peer for r in d.dropped] == ["B"]
    assert b.reserve("D", 4, None, 23).dropped == ()  # refused, nothing dropped
    b.reserve("C", 3, None, 30)
    d = b.reserve("D", 4, None, 41)
    assert [r.peer for r in d.dropped] == ["C"] and d.ok


def test_connection_close_ends_the_reservation() -> None:
    b = book()
    b.reserve("A", "conn", None, 0)
    assert b.drop_connection("conn") is not None
    assert b.open_circuit("B", "A", 1)[0].status == Status.NO_RESERVATION


def test_circuits() -> None:
    b = book(max_circuits_per_reservation=2, max_circuits=3)
    b.reserve("A", 1, None, 0)
    b.reserve("Z", 2, None, 0)
    assert b.open_circuit("B", "nobody", 0)[0].status == Status.NO_RESERVATION
    assert b.open_circuit("A", "A", 0)[0].status == Status.PERMISSION_DENIED
    ids = [b.open_circuit("B", "A", 0)[1], b.open_circuit("C", "A", 0)[1]]
    d, cid = b.open_circuit("D", "A", 0)
    assert d.status == Status.RESOURCE_LIMIT_EXCEEDED and cid is None
    assert "--max-circuits-per-reservation 2" in d.reason
    assert b.open_circuit("B", "Z", 0)[0].ok
    d, _ = b.open_circuit("C", "Z", 0)
    assert d.status == Status.RESOURCE_LIMIT_EXCEEDED and "--max-circuits 3" in d.reason
    b.close_circuit(ids[0])  # type: ignore[arg-type]
    assert b.open_circuit("D", "A", 0)[0].ok


def test_circuits_per_source_peer_and_ip() -> None:
    b = book(max_circuits_per_peer=2, max_circuits_per_ip=3)
    for dst in "XYZ":
        b.reserve(dst, dst, None, 0)
    first = b.open_circuit("A", "X", 0, "10.0.0.1")[1]
    assert b.open_circuit("A", "Y", 0, "10.0.0.1")[0].ok
    d, cid = b.open_circuit("A", "Z", 0, "10.0.0.1")
    assert d.status == Status.RESOURCE_LIMIT_EXCEEDED and cid is None
    assert "--max-circuits-per-peer 2" in d.reason
    assert b.open_circuit("B", "X", 0, "10.0.0.1")[0].ok  # another identity, same address
    d, _ = b.open_circuit("C", "X", 0, "10.0.0.1")
    assert d.status == Status.RESOURCE_LIMIT_EXCEEDED and "--max-circuits-per-ip 3" in d.reason
    assert b.open_circuit("C", "X", 0, "10.0.0.2")[0].ok
    assert b.open_circuit("D", "X", 0, None)[0].ok  # no address known: the peer caps only
    b.close_circuit(first)  # type: ignore[arg-type]
    assert b.open_circuit("A", "Z", 0, "10.0.0.1")[0].ok


def test_one_source_cannot_take_all_of_a_targets_circuits() -> None:
    """Eight identities on one address held all eight circuits of a sharer's
    reservation, so honest receivers were refused (a hostile-peer review):
    a source address gets half, a source peer two."""
    b = book()
    b.reserve("S", 1, None, 0)
    took = [b.open_circuit(f"evil{i}", "S", 0, "10.0.0.9")[0].ok for i in range(8)]
    assert took == [True] * 4 + [False] * 4
    d, _ = b.open_circuit("evil9", "S", 0, "10.0.0.9")
    assert d.status == Status.RESOURCE_LIMIT_EXCEEDED and "already has 4 circuits open to this target" in d.reason
    assert b.open_circuit("honest", "S", 0, "192.0.2.7")[0].ok  # an honest receiver still gets in
    assert b.open_circuit("honest", "S", 0, "192.0.2.7")[0].ok  # a reconnect beside the old one
    assert not b.open_circuit("honest", "S", 0, "192.0.2.8")[0].ok  # a third from one peer: no
    b.reserve("T", 2, None, 0)
    assert b.open_circuit("evil0", "T", 0, "10.0.0.9")[0].ok  # other targets are other pairs


def test_wire_limit_omitted_only_when_unlimited() -> None:
    assert RelayLimits().wire_limit() is None
    assert RelayLimits(circuit_data=5).wire_limit() == Limit(0, 5)
    assert RelayLimits(circuit_duration=9).wire_limit() == Limit(9, 0)


@pytest.mark.parametrize(
    "field", ["max_reservations", "reservation_ttl", "max_circuits", "max_circuits_per_peer", "max_circuits_per_ip"]
)
def test_bad_limits(field: str) -> None:
    with pytest.raises(ValueError):
        RelayLimits(**{field: 0})


def test_idle_limit_defaults_to_half_an_hour_and_cannot_be_negative() -> None:
    assert RelayLimits().circuit_idle == 1800
    with pytest.raises(ValueError):
        RelayLimits(circuit_idle=-1)


def test_an_ipv6_slash64_counts_as_one_source() -> None:
    """What the HOP server hands the book: one host's /64, not each of its
    2^64 addresses (keyed by address, 200 reservations from one /64 were
    granted 128 of 128 with a per-IP limit of 8)."""
    from p2pshare.node.circuit import hop

    class Conn:
        def __init__(self, ip: str | None) -> None:
            self.ip = ip

        def remote_address(self) -> tuple[str, int] | None:
            return (self.ip, 4001) if self.ip else None

    group = hop._remote_ip(Conn("2001:db8::1"))  # type: ignore[arg-type]
    assert group == hop._remote_ip(Conn("2001:db8::ffff:7")) == "2001:db8::/64"  # type: ignore[arg-type]
    assert hop._remote_ip(Conn("2001:db8:0:1::1")) != group  # type: ignore[arg-type]
    assert hop._remote_ip(Conn("203.0.113.7")) == "203.0.113.7"  # type: ignore[arg-type]
    assert hop._remote_ip(Conn(None)) is None  # type: ignore[arg-type]
    b = book(max_reservations_per_ip=8)
    for i in range(8):
        assert b.reserve(f"P{i}", i, hop._remote_ip(Conn(f"2001:db8::{i + 1:x}")), 0).ok  # type: ignore[arg-type]
    d = b.reserve("P8", 8, hop._remote_ip(Conn("2001:db8::99")), 0)  # type: ignore[arg-type]
    assert d.status == Status.RESERVATION_REFUSED and "--max-reservations-per-ip 8" in d.reason
