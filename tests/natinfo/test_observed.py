"""Whom to ask for our public mapping, and what identify's answers say (pure)."""

from __future__ import annotations

from p2pshare.node.natinfo.observed import Sighting, identify_sources, mapping_from_sightings

R = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWRelay"
B1 = "/ip4/203.0.113.2/tcp/4001/p2p/12D3KooWBoot1"
B2 = "/ip4/203.0.113.6/tcp/4001/p2p/12D3KooWBoot2"
DNS = "/dnsaddr/bootstrap.example.org/p2p/12D3KooWBoot3"


def test_sources_relays_first_then_public_peers_then_named_ones() -> None:
    assert identify_sources([R], [DNS, B1]) == [R, B1, DNS]


def test_sources_skip_peers_that_see_only_our_lan_side() -> None:
    """A loopback/LAN bootstrap peer sees our private address: nothing to announce."""
    lan = "/ip4/100.64.1.9/tcp/4001/p2p/12D3KooWLan"
    loop = "/ip4/127.0.0.1/tcp/4002/p2p/12D3KooWLoop"
    assert identify_sources([], [lan, loop, B2]) == [B2]
    assert identify_sources([], [lan, loop]) == []
    assert identify_sources([R], []) == [R]  # a relay is asked as before, wherever it is


def test_sources_one_per_peer_no_circuits_no_bare_addresses() -> None:
    other_addr_of_b1 = "/ip4/198.51.100.7/tcp/4001/p2p/12D3KooWBoot1"
    circuit = f"{B2}/p2p-circuit/p2p/12D3KooWX"
    assert identify_sources([], [B1, other_addr_of_b1, circuit, "/ip4/203.0.113.9/tcp/1"]) == [B1]


def test_mapping_when_every_sighting_kept_its_port_and_ip() -> None:
    seen = [Sighting("203.0.113.194", 40001, 40001), Sighting("203.0.113.194", 40002, 40002)]
    assert mapping_from_sightings(seen, 4001) == "/ip4/203.0.113.194/tcp/4001"
    assert mapping_from_sightings(seen[:1], 4001) == "/ip4/203.0.113.194/tcp/4001"


def test_no_mapping_when_a_port_changed() -> None:
    """Symmetric NAT: the peer could not know where to aim."""
    seen = [Sighting("203.0.113.194", 40001, 40001), Sighting("203.0.113.194", 51234, 40002)]
    assert mapping_from_sightings(seen, 4001) is None


def test_no_mapping_when_peers_see_two_ips() -> None:
    seen = [Sighting("203.0.113.194", 40001, 40001), Sighting("198.51.100.3", 40002, 40002)]
    assert mapping_from_sightings(seen, 4001) is None


def test_a_lan_sighting_does_not_outvote_a_public_one() -> None:
    seen = [Sighting("100.64.1.2", 40001, 40001), Sighting("203.0.113.194", 40002, 40002)]
    assert mapping_from_sightings(seen, 4001) == "/ip4/203.0.113.194/tcp/4001"


def test_no_sighting_no_mapping() -> None:
    assert mapping_from_sightings([], 4001) is None
