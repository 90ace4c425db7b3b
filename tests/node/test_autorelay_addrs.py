"""Which address AutoRelay dials a relay candidate at (pure)."""

from __future__ import annotations

from p2pshare.node.autorelay import (
    LOOKUP_LATER,
    LOOKUP_LIMIT_LATER,
    LOOKUP_SOON,
    lookup_limit,
    next_lookup_in,
    relay_addr_for,
)

P = "12D3KooWFqrL88Tw96io4dUpU8u3vR6AsW5u7YEaPnfEpjEcGDuP"


def test_public_before_private_and_never_loopback_or_link_local() -> None:
    addrs = [
        "/ip4/127.0.0.1/tcp/4001",
        "/ip4/169.254.1.2/tcp/4001",
        "/ip4/100.64.0.9/tcp/4001",
        "/ip4/203.0.113.7/tcp/4001",
    ]
    assert relay_addr_for(P, addrs) == f"/ip4/203.0.113.7/tcp/4001/p2p/{P}"
    assert relay_addr_for(P, addrs[:2]) is None


def test_circuits_and_non_tcp_are_not_relay_addresses() -> None:
    addrs = [f"/ip4/203.0.113.7/tcp/4001/p2p/{P}/p2p-circuit", "/ip4/203.0.113.7/udp/4001/quic-v1"]
    assert relay_addr_for(P, addrs) is None


def test_loopback_only_when_allowed() -> None:
    assert relay_addr_for(P, ["/ip4/127.0.0.1/tcp/4001"], allow_loopback=True) == f"/ip4/127.0.0.1/tcp/4001/p2p/{P}"


def test_an_address_naming_another_peer_is_skipped() -> None:
    other = "12D3KooWF4WWdtePbo6jtJ2qq5AEqrFFp4GbvaBCrRvrZyTbsGAH"
    assert relay_addr_for(P, [f"/ip4/203.0.113.7/tcp/4001/p2p/{other}", "/ip4/198.51.100.2/tcp/1"]) == (
        f"/ip4/198.51.100.2/tcp/1/p2p/{P}"
    )


def test_community_lookups_come_soon_while_nothing_carries_data() -> None:
    # A first lookup that misses (routing table not full, record not landed
    # yet) is followed within seconds, not after 30 s.
    waits = [next_lookup_in(False, n) for n in range(8)]
    assert waits[0] <= 2.0 and waits[:5] == sorted(waits[:5])
    assert sum(waits[:3]) <= 15.0  # three more looks within the time a receiver keeps searching
    assert waits[5:] == [LOOKUP_SOON[-1]] * 3 and LOOKUP_SOON[-1] == 30.0
    assert next_lookup_in(False, -1) == LOOKUP_SOON[0]


def test_community_lookups_are_rare_once_a_reservation_carries_data() -> None:
    assert next_lookup_in(True, 0) == next_lookup_in(True, 9) == LOOKUP_LATER == 600.0


def test_a_node_without_a_relay_that_carries_data_takes_the_first_community_relay_found() -> None:
    """Waiting for every answer meant waiting up to 5 s for a peer that has
    left the network, with the provider already known after one hop."""
    assert lookup_limit(False) == 1
    assert lookup_limit(True) == LOOKUP_LIMIT_LATER > 1
