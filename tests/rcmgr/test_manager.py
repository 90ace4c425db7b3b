"""The resource manager's accounting, in-process with small limits."""

from __future__ import annotations

import pytest

from p2pshare.node.rcmgr import (
    DEFAULT_LIMITS,
    Limits,
    Resource,
    ResourceLimitExceeded,
    ResourceManager,
    ScopeKind,
    ScopeLimit,
)
from p2pshare.node.rcmgr.limits import BULK_GROWTH, BULK_WINDOW, CONN_MEMORY, STREAM_BASE_MEMORY
from p2pshare.node.rcmgr.manager import source_of

BIG = 1 << 40


def _limits(**over: ScopeLimit) -> Limits:
    base = dict(
        system=ScopeLimit(conns=10, streams=20, memory=BIG),
        transient=ScopeLimit(conns=4, streams=4, memory=BIG),
        peer=ScopeLimit(conns=2, streams=6, memory=BIG),
        protocol_default=ScopeLimit(streams=10, memory=BIG),
        protocol_peer_default=ScopeLimit(streams=3, memory=BIG),
        transient_source=ScopeLimit(conns=3, streams=3, memory=BIG),
    )
    base.update(over)
    return Limits(**base)  # type: ignore[arg-type]


def test_connection_moves_from_transient_to_its_peer() -> None:
    rm = ResourceManager(_limits())
    scope = rm.open_connection("203.0.113.5")
    assert rm.usage()["transient"]["conns"] == 1
    scope.set_peer("peerA")
    assert rm.usage()["transient"]["conns"] == 0
    assert rm.usage()["system"] == {"conns": 1, "streams": 0, "memory": CONN_MEMORY}
    scope.close()
    scope.close()  # idempotent
    assert rm.usage()["system"] == {"conns": 0, "streams": 0, "memory": 0}
    assert rm.usage()["peers"] == {"count": 0}


def test_handshakes_in_flight_are_bounded_in_total_and_per_source() -> None:
    rm = ResourceManager(_limits())
    held = [rm.open_connection("203.0.113.5") for _ in range(3)]
    with pytest.raises(ResourceLimitExceeded) as e:
        rm.open_connection("203.0.113.5")
    assert e.value.scope is ScopeKind.SOURCE and e.value.resource is Resource.CONNS
    held.append(rm.open_connection("203.0.113.6"))  # another source still gets in
    with pytest.raises(ResourceLimitExceeded) as e:
        rm.open_connection("203.0.113.7")
    assert e.value.scope is ScopeKind.TRANSIENT
    held[0].set_peer("p")  # authenticated: no longer counts as in flight
    rm.open_connection("203.0.113.7")
    assert rm.refused[(ScopeKind.SOURCE, Resource.CONNS)] == 1


def test_a_refusal_changes_nothing() -> None:
    rm = ResourceManager(_limits())
    a = rm.open_connection("203.0.113.1")
    b = rm.open_connection("203.0.113.2")
    c = rm.open_connection("203.0.113.3")
    a.set_peer("p")
    b.set_peer("p")
    before = rm.usage()
    with pytest.raises(ResourceLimitExceeded) as e:
        c.set_peer("p")  # third connection of one peer
    assert e.value.scope is ScopeKind.PEER
    assert rm.usage() == before
    c.close()  # still releases its transient reservation
    assert rm.usage()["transient"]["conns"] == 0


def test_system_connection_limit_counts_authenticated_ones() -> None:
    rm = ResourceManager(_limits())
    for i in range(10):
        s = rm.open_connection(f"198.51.100.{i}")
        s.set_peer(f"p{i}")
    with pytest.raises(ResourceLimitExceeded) as e:
        rm.open_connection("198.51.100.99")
    assert e.value.scope is ScopeKind.SYSTEM


def test_streams_before_negotiation_are_bounded_per_peer() -> None:
    rm = ResourceManager(_limits())
    held = [rm.open_stream("A") for _ in range(3)]
    with pytest.raises(ResourceLimitExceeded) as e:
        rm.open_stream("A")
    assert e.value.scope is ScopeKind.SOURCE and e.value.resource is Resource.STREAMS
    rm.open_stream("B")  # another peer is not locked out by A
    held[0].set_protocol("/x")
    rm.open_stream("A")


def test_protocol_limits_per_peer_and_in_total() -> None:
    rm = ResourceManager(_limits(protocol_peer_default=ScopeLimit(streams=2, memory=BIG)))
    for _ in range(2):
        rm.open_stream("A").set_protocol("/x")
    s = rm.open_stream("A")
    with pytest.raises(ResourceLimitExceeded) as e:
        s.set_protocol("/x")
    assert e.value.scope is ScopeKind.PROTOCOL_PEER
    s.set_protocol("/y")  # other protocols are not affected
    s.close()
    assert rm.usage()["protocol /x"]["streams"] == 2


def test_protocol_overrides_apply() -> None:
    limits = _limits(protocol_peer_default=ScopeLimit(streams=5, memory=BIG))
    limits = Limits(**{**vars(limits), "protocol_peer": {"/ping": ScopeLimit(streams=1, memory=BIG)}})
    rm = ResourceManager(limits)
    rm.open_stream("A").set_protocol("/ping")
    with pytest.raises(ResourceLimitExceeded):
        rm.open_stream("A").set_protocol("/ping")


def test_memory_reservations_are_refused_not_raised_and_released() -> None:
    limits = _limits(peer=ScopeLimit(conns=2, streams=6, memory=STREAM_BASE_MEMORY * 2 + 1000))
    rm = ResourceManager(limits)
    a = rm.open_stream("A")
    a.set_protocol("/x")
    assert a.reserve_memory(STREAM_BASE_MEMORY)
    assert not a.reserve_memory(1001)  # peer scope full: refused, nothing held
    assert rm.usage()["system"]["memory"] == 2 * STREAM_BASE_MEMORY
    a.release_memory(STREAM_BASE_MEMORY)
    assert a.reserve_memory(1000)
    a.close()
    assert not a.reserve_memory(1)
    assert rm.usage()["system"] == {"conns": 0, "streams": 0, "memory": 0}


def test_state_is_forgotten_when_released() -> None:
    rm = ResourceManager()
    for i in range(500):
        c = rm.open_connection(f"2001:db8:{i:x}::1")
        c.set_peer(f"peer{i}")
        s = rm.open_stream(f"peer{i}")
        s.set_protocol(f"/p/{i}")
        s.close()
        c.close()
    assert not rm._peers and not rm._sources and not rm._protocols and not rm._protocol_peers


def test_ipv6_sources_are_prefixes() -> None:
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:3::1") != source_of("2001:db8:1:2::1")
    assert source_of("203.0.113.4") == "203.0.113.4"


def test_default_limits_put_pre_authentication_far_below_after() -> None:
    d = DEFAULT_LIMITS
    assert d.transient.conns * 8 <= d.system.conns
    assert d.transient_source.conns < d.transient.conns
    assert d.transient.memory * 8 <= d.system.memory
    with pytest.raises(ValueError):
        ScopeLimit(conns=-1)


_HOP = "/libp2p/circuit/relay/0.2.0/hop"
_STOP = "/libp2p/circuit/relay/0.2.0/stop"


def test_a_relays_busy_circuits_never_crowd_out_its_other_streams() -> None:
    """The relay's default circuit limits, every circuit's HOP stream at the
    bulk window: each HOP stream slot left is still admitted at its base, as
    are a RESERVE's and a CONNECT's (the HOP budget used to be full at 32)."""
    from p2pshare.node.circuit.limits import RelayLimits

    relay = RelayLimits()
    rm = ResourceManager()
    sources = [f"src{i}" for i in range(relay.max_circuits // relay.max_circuits_per_peer)]
    for src in sources:
        for _ in range(relay.max_circuits_per_peer):
            s = rm.open_stream(src)
            s.set_protocol(_HOP)
            assert s.reserve_memory(BULK_GROWTH)
    hop = rm.usage()[f"protocol {_HOP}"]
    assert hop["memory"] == relay.max_circuits * BULK_WINDOW
    for src in sources:  # each source's other HOP stream slots, at their base
        for _ in range(DEFAULT_LIMITS.for_protocol_peer(_HOP).streams - relay.max_circuits_per_peer):
            rm.open_stream(src).set_protocol(_HOP)
    for i in range(DEFAULT_LIMITS.for_protocol(_HOP).streams - rm.usage()[f"protocol {_HOP}"]["streams"]):
        rm.open_stream(f"honest{i // 16}").set_protocol(_HOP)  # up to the protocol's stream limit
    assert rm.usage()[f"protocol {_HOP}"]["streams"] == DEFAULT_LIMITS.for_protocol(_HOP).streams


def test_relay_budgets_follow_the_circuit_limits() -> None:
    """Each scope a circuit's bulk window is booked in holds every circuit
    it may carry at that window plus every other stream at its base."""
    from p2pshare.node.circuit.limits import RelayLimits

    relay, d = RelayLimits(), DEFAULT_LIMITS

    def holds(limit: ScopeLimit, circuits: int) -> bool:
        return limit.memory >= limit.streams * STREAM_BASE_MEMORY + circuits * BULK_GROWTH

    assert holds(d.for_protocol(_HOP), relay.max_circuits)
    assert holds(d.for_protocol_peer(_HOP), relay.max_circuits_per_peer)
    assert holds(d.for_protocol_peer(_STOP), relay.max_circuits_per_reservation)
    assert holds(d.peer, relay.max_circuits_per_peer)
    assert holds(d.system, relay.max_circuits)
    assert d.for_protocol_peer(_HOP).streams >= relay.max_circuits_per_peer


def test_one_address_holds_a_bounded_number_of_authenticated_connections() -> None:
    """Peer IDs cost nothing: one host must not hold every connection
    through many of them (8 each) once their handshakes are done."""
    rm = ResourceManager(_limits(system=ScopeLimit(conns=100, streams=20, memory=BIG)))
    per_source = rm.limits.established_source.conns
    held = []
    for i in range(per_source):
        scope = rm.open_connection("198.51.100.9")
        scope.set_peer(f"peer{i}")
        held.append(scope)
    late = rm.open_connection("198.51.100.9")
    with pytest.raises(ResourceLimitExceeded) as e:
        late.set_peer("one-more-identity")
    assert e.value.scope is ScopeKind.SOURCE and e.value.resource is Resource.CONNS
    late.close()
    other = rm.open_connection("203.0.113.1")  # another address still gets in
    other.set_peer("someone")
    held.pop().close()  # one left: room for one again
    again = rm.open_connection("198.51.100.9")
    again.set_peer("peer-again")
    for scope in [*held, other, again]:
        scope.close()
    assert rm.usage()["system"] == {"conns": 0, "streams": 0, "memory": 0}
    assert rm._sources == {}  # the table holds only addresses with connections


def test_a_relayed_connection_has_no_address_to_count() -> None:
    rm = ResourceManager(
        _limits(system=ScopeLimit(conns=100, streams=20, memory=BIG), peer=ScopeLimit(conns=100, streams=6, memory=BIG))
    )
    scopes = []
    for i in range(rm.limits.established_source.conns + 5):
        scope = rm.open_connection(None)
        scope.set_peer(f"relayed{i}")
        scopes.append(scope)
    assert rm.usage()["system"]["conns"] == len(scopes)


def test_loopback_is_this_machine_and_not_counted_per_address() -> None:
    rm = ResourceManager(_limits(system=ScopeLimit(conns=100, streams=20, memory=BIG)))
    for i in range(rm.limits.established_source.conns + 5):
        rm.open_connection("127.0.0.1").set_peer(f"local{i}")
    rm.open_connection("::1").set_peer("local-v6")


def test_one_address_holds_a_bounded_number_of_streams_through_many_peers() -> None:
    """Peer IDs cost nothing: the streams of every peer on connections from
    one address are counted together, negotiating and agreed."""
    rm = ResourceManager(
        _limits(
            system=ScopeLimit(conns=10, streams=100, memory=BIG),
            transient=ScopeLimit(conns=4, streams=100, memory=BIG),
            protocol_default=ScopeLimit(streams=100, memory=BIG),
            stream_source=ScopeLimit(streams=5, memory=BIG),
            transient_stream_source=ScopeLimit(streams=2, memory=BIG),
        )
    )
    ip = "198.51.100.9"
    a1, a2 = rm.open_stream("A", ip), rm.open_stream("B", ip)
    with pytest.raises(ResourceLimitExceeded) as e:  # a third identity, still negotiating
        rm.open_stream("C", ip)
    assert e.value.scope is ScopeKind.SOURCE and e.value.resource is Resource.STREAMS
    other = rm.open_stream("C", "203.0.113.1")  # another address is not locked out
    a1.set_protocol("/x")
    a2.set_protocol("/x")
    agreed = [a1, a2]
    for peer in ("C", "D", "E"):
        scope = rm.open_stream(peer, ip)
        scope.set_protocol("/x")
        agreed.append(scope)
    with pytest.raises(ResourceLimitExceeded) as e:  # 5 agreed: the address is full
        rm.open_stream("F", ip)
    assert e.value.scope is ScopeKind.SOURCE
    assert rm.open_stream("F", "::1").peer == "F"  # loopback is this machine: not counted
    assert rm.open_stream("G", None).peer == "G"  # relayed: no address of its own
    agreed.pop().close()
    rm.open_stream("F", ip).close()  # room for one again
    assert rm.open_stream("H", "2001:db8:1:2::7") and rm.open_stream("I", "2001:db8:1:2::8")
    with pytest.raises(ResourceLimitExceeded):  # the same /64 is one address
        rm.open_stream("J", "2001:db8:1:2::9")
    for scope in [*agreed, other]:
        scope.close()
    assert not [k for k in rm._sources if k.endswith(ip)]  # released, and forgotten


def test_a_stream_refused_for_its_address_changes_nothing() -> None:
    rm = ResourceManager(_limits(stream_source=ScopeLimit(streams=1, memory=BIG)))
    first = rm.open_stream("A", "198.51.100.9")
    before = rm.usage()
    with pytest.raises(ResourceLimitExceeded):
        rm.open_stream("B", "198.51.100.9")
    assert rm.usage() == before
    first.set_protocol("/x")
    assert first.reserve_memory(1000)  # memory is counted for the address too
    first.close()
    assert rm.usage()["system"] == {"conns": 0, "streams": 0, "memory": 0}
    assert rm._sources == {}


def test_default_limits_keep_one_address_below_what_the_node_shares() -> None:
    d = DEFAULT_LIMITS
    per_address = d.stream_source.streams
    assert per_address <= d.system.streams // 8
    assert per_address <= d.for_protocol("/ipfs/kad/1.0.0").streams // 4
    assert d.transient_stream_source.streams <= d.transient.streams // 4
    # Room for every connection one address may hold to carry a few streams.
    assert per_address >= 8 * d.established_source.conns
