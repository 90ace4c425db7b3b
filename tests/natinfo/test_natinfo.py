"""NAT discovery: address facts, STUN-over-TCP codec, classifier, loopback responder."""

from __future__ import annotations

import socket

import pytest
import trio

from p2pshare.node.natinfo._trio_stun import observe, probe_nat, serve_stun_tcp
from p2pshare.node.natinfo.addrs import is_public_ip, parse_tcp_addr
from p2pshare.node.natinfo.classify import Mapping, NatReport, Strategy, classify, strategy
from p2pshare.node.natinfo.stun import (
    HEADER_LENGTH,
    Observation,
    StunError,
    binding_request,
    binding_response,
    body_length,
    parse_binding_response,
)

LAN = ("100.64.1.2", 4001)
S1, S2 = ("203.0.113.10", 3478), ("203.0.113.10", 3479)


@pytest.mark.parametrize(
    "ip, public",
    [
        ("203.0.113.5", True),
        ("198.51.100.17", True),
        ("8.8.8.8", True),
        ("2001:db8::1", True),
        ("100.64.1.2", False),
        ("10.0.0.1", False),
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("not-an-ip", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_is_public_ip(ip: str, public: bool) -> None:
    assert is_public_ip(ip) is public


def test_parse_tcp_addr() -> None:
    a = parse_tcp_addr("/ip4/203.0.113.5/tcp/4001")
    assert a is not None and a.public and a.port == 4001
    for bad in (
        "/ip4/1.2.3.4/tcp/1/p2p-circuit",
        "/ip4/1.2.3.4/udp/1",
        "/dns4/x/tcp/1",
        "junk",
        "/ip4/1.2.3.4/tcp/0",
        b"\x04\x01",
    ):
        assert parse_tcp_addr(bad) is None


def test_stun_roundtrip_and_bounds() -> None:
    txid, req = binding_request()
    resp = binding_response(req, ("203.0.113.2", 4001))
    assert parse_binding_response(resp, txid) == ("203.0.113.2", 4001)
    with pytest.raises(StunError, match="another transaction"):
        parse_binding_response(resp, b"x" * 12)
    with pytest.raises(StunError, match="not a Binding request"):
        binding_response(resp, ("1.2.3.4", 1))
    with pytest.raises(StunError):
        body_length(b"\x00\x01\xff\xfc" + req[4:HEADER_LENGTH])  # body too long
    with pytest.raises(StunError):
        body_length(b"GET / HTTP/1.1\r\nHost: ")


def obs(mapped: tuple[str, int], server: tuple[str, int] = S1, local: tuple[str, int] = LAN) -> Observation:
    return Observation(local, server, mapped)


def test_classify() -> None:
    pres = classify([obs(("203.0.113.2", 4001)), obs(("203.0.113.2", 4001), S2)])
    assert pres.mapping is Mapping.ENDPOINT_INDEPENDENT and pres.port_preserving and pres.punchable
    assert pres.public == ("203.0.113.2", 4001)
    moved = classify([obs(("203.0.113.2", 5555)), obs(("203.0.113.2", 5555), S2)])
    assert moved.mapping is Mapping.ENDPOINT_INDEPENDENT and not moved.port_preserving
    sym = classify([obs(("203.0.113.2", 40001)), obs(("203.0.113.2", 51234), S2)])
    assert sym.mapping is Mapping.ENDPOINT_DEPENDENT and sym.public is None and not sym.punchable
    none = classify(
        [
            obs(("198.51.100.18", 4001), S1, ("198.51.100.18", 4001)),
            obs(("198.51.100.18", 4001), S2, ("198.51.100.18", 4001)),
        ]
    )
    assert none.mapping is Mapping.NONE
    assert classify([obs(("203.0.113.2", 4001))]).mapping is Mapping.UNKNOWN
    assert classify([]).mapping is Mapping.UNKNOWN


def test_strategy() -> None:
    eim = NatReport(Mapping.ENDPOINT_INDEPENDENT, ("203.0.113.2", 4001), True, 2, 2)
    edm = NatReport(Mapping.ENDPOINT_DEPENDENT, None, False, 2, 2)
    assert strategy(eim, eim) is Strategy.SIMULTANEOUS_OPEN
    assert strategy(eim, edm) is Strategy.PREDICT
    assert strategy(edm, edm) is Strategy.RELAY_ONLY
    assert strategy(edm, edm, theirs_public=True) is Strategy.DIRECT


async def test_stun_over_tcp_loopback() -> None:
    """Observed from a port another socket listens on (as our libp2p listener)."""
    listener = trio.socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    await listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    local = listener.getsockname()
    async with trio.open_nursery() as nursery:
        ports = await nursery.start(serve_stun_tcp, "127.0.0.1", [0, 0])
        servers = [("127.0.0.1", p) for p in ports]
        seen = await observe(local, servers)
        assert sorted(o.server for o in seen) == sorted(servers)
        assert {o.mapped for o in seen} == {local}
        # Loopback is not public, so this is not "no NAT"; two endpoints agree.
        report = await probe_nat(local, servers)
        assert report.mapping is Mapping.ENDPOINT_INDEPENDENT and report.port_preserving
        # A server that is not there is skipped, not fatal.
        assert await observe(local, [("127.0.0.1", 1)], timeout=2) == []
        nursery.cancel_scope.cancel()
    listener.close()


def test_stun_constants_are_aioices() -> None:
    """stun.py spells out RFC 5389's header length and magic cookie so that
    importing it does not import aioice; they must be aioice's."""
    from aioice import stun as codec

    from p2pshare.node.natinfo import stun

    assert stun.HEADER_LENGTH == codec.HEADER_LENGTH
    assert stun._MAGIC == codec.COOKIE.to_bytes(4, "big")
