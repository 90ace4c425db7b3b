"""Learning our mapping from identify's observedAddr (relays without STUN)."""

from __future__ import annotations

import multiaddr

from p2pshare.node.host import open_host
from p2pshare.node.identity import generate_identity
from p2pshare.node.natinfo._trio_identify import observe_via_identify, observed_addr_field, predict_mapping


def _field(num: int, payload: bytes) -> bytes:
    return bytes([(num << 3) | 2, len(payload)]) + payload


def test_observed_addr_field_found_among_others() -> None:
    obs = multiaddr.Multiaddr("/ip4/203.0.113.5/tcp/4001").to_bytes()
    msg = _field(5, b"/ipfs/id/1.0.0") + bytes([0x08, 0x01]) + _field(4, obs) + _field(6, b"agent")
    assert observed_addr_field(msg) == obs


def test_observed_addr_field_absent_or_truncated() -> None:
    assert observed_addr_field(_field(5, b"x")) is None
    assert observed_addr_field(bytes([(4 << 3) | 2, 50]) + b"short") is None
    assert observed_addr_field(b"\xff" * 12) is None


def test_predict_mapping_only_when_the_port_is_preserved() -> None:
    assert predict_mapping("203.0.113.2", 40000, 40000, 4001) == "/ip4/203.0.113.2/tcp/4001"
    assert predict_mapping("203.0.113.2", 51234, 40000, 4001) is None  # symmetric: unpredictable


async def test_identify_tells_our_address_and_local_port_on_loopback() -> None:
    async with open_host(generate_identity()) as relay, open_host(generate_identity()) as me:
        addr = f"{relay.listen_addrs()[0]}/p2p/{relay.peer_id}"
        seen = await observe_via_identify(me, addr)
        assert seen is not None
        ip, port, local = seen
        assert ip == "127.0.0.1" and port == local  # no NAT on loopback: the port is ours


async def test_identify_compares_ports_of_the_same_connection() -> None:
    """Several connections to the relay (relay client, DHT bootstrap and the
    probe dial it at once at start-up): the observed port must be compared
    with the local port of the connection that carried identify, not of
    another one, or a port-preserving NAT looks port-changing."""
    from p2pshare.node.dcutr import _trio_libp2p as lp

    async with open_host(generate_identity()) as relay, open_host(generate_identity()) as me:
        base = str(relay.listen_addrs()[0])
        await me.connect(relay.peer_id, [base], timeout=5.0)
        for _ in range(2):
            await lp.dial_direct(me, relay.peer_id, base)
        assert len(lp.direct_conns(me, relay.peer_id)) == 3
        for _ in range(3):
            seen = await observe_via_identify(me, f"{base}/p2p/{relay.peer_id}")
            assert seen is not None and seen[1] == seen[2]


async def test_observe_from_several_peers_returns_at_quorum() -> None:
    """Three peers asked at once; two answers settle it; an address where
    nothing listens is no answer (and no error)."""
    from p2pshare.node.natinfo._trio_identify import observe_from

    async with (
        open_host(generate_identity()) as a,
        open_host(generate_identity()) as b,
        open_host(generate_identity()) as c,
        open_host(generate_identity()) as me,
    ):
        dead = f"/ip4/127.0.0.1/tcp/9/p2p/{c.peer_id}"
        sources = [f"{a.listen_addrs()[0]}/p2p/{a.peer_id}", dead, f"{b.listen_addrs()[0]}/p2p/{b.peer_id}"]
        seen = await observe_from(me, sources, timeout=3.0)
        assert len(seen) == 2
        assert all(s.ip == "127.0.0.1" and s.port == s.local_port for s in seen)


async def test_observe_from_moves_past_peers_that_do_not_answer() -> None:
    """A bootstrap list may start with dead peers: each one that gives no
    answer makes room for the next, so the live ones further down count."""
    from p2pshare.node.natinfo._trio_identify import observe_from

    async with (
        open_host(generate_identity()) as a,
        open_host(generate_identity()) as b,
        open_host(generate_identity()) as c,
        open_host(generate_identity()) as d,
        open_host(generate_identity()) as me,
    ):
        dead = [f"/ip4/127.0.0.1/tcp/9/p2p/{x.peer_id}" for x in (c, d)]
        live = [f"{x.listen_addrs()[0]}/p2p/{x.peer_id}" for x in (a, b)]
        seen = await observe_from(me, [*dead, *live], ask=2, timeout=3.0)
        assert len(seen) == 2
