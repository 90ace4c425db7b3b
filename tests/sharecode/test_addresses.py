from __future__ import annotations

import pytest

from p2pshare.sharecode import MAX_ADDRESS_CHARS, ShareCodeError, validate_multiaddr

from .ids import OTHER, PEER, RELAY, SECP256K1

GOOD = [
    "/ip4/1.2.3.4/tcp/4001",
    "/ip4/127.0.0.1/tcp/65535",
    "/ip4/10.0.0.1/udp/1/quic-v1",
    f"/ip4/1.2.3.4/tcp/4001/p2p/{PEER}",
    "/ip6/::1/tcp/4001",
    f"/ip6/2001:db8::7/udp/443/quic-v1/p2p/{PEER}",
    "/dns/example.com/tcp/443",
    "/dns/xn--bcher-kva.example/tcp/443",
    "/dns4/relay-1.example.org/udp/4001/quic-v1",
    f"/dns6/localhost/tcp/1/p2p/{PEER}",
    f"/ip4/1.2.3.4/tcp/4001/p2p/{RELAY}/p2p-circuit",
    f"/ip4/1.2.3.4/tcp/4001/p2p/{RELAY}/p2p-circuit/p2p/{PEER}",
    f"/ip6/2001:db8::1/udp/4001/quic-v1/p2p/{SECP256K1[0]}/p2p-circuit/p2p/{PEER}",
    f"/dns4/relay.example.org/tcp/4001/p2p/{OTHER}/p2p-circuit/p2p/{PEER}",
]


@pytest.mark.parametrize("addr", GOOD)
def test_good(addr: str) -> None:
    assert validate_multiaddr(addr, PEER) == addr


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("/ip6/0:0:0:0:0:0:0:1/tcp/1", "/ip6/::1/tcp/1"),
        ("/ip6/2001:DB8:0::1/tcp/1", "/ip6/2001:db8::1/tcp/1"),
        ("/ip6/::ffff:102:304/tcp/1", "/ip6/::ffff:1.2.3.4/tcp/1"),
        ("/ip6/::ffff:1.2.3.4/tcp/1", "/ip6/::ffff:1.2.3.4/tcp/1"),
    ],
)
def test_ipv6_is_canonicalised(given: str, canonical: str) -> None:
    assert validate_multiaddr(given, PEER) == canonical
    assert validate_multiaddr(canonical, PEER) == canonical


BAD = [
    ("/ip4/0.0.0.0/tcp/1", "unspecified address 0.0.0.0"),
    ("/ip6/::/tcp/1", "unspecified address ::"),
    ("/ip6/0:0::0/udp/1/quic-v1", "unspecified address ::"),
    ("/ip6/::ffff:0.0.0.0/tcp/1", "unspecified address ::"),
    (f"/ip4/0.0.0.0/tcp/1/p2p/{RELAY}/p2p-circuit", "unspecified address 0.0.0.0"),
    ("ip4/1.2.3.4/tcp/1", "must start with '/'"),
    ("/ip4/1.2.3.4//tcp/1", "empty component"),
    ("/ip4/1.2.3.4/tcp/1/", "empty component"),
    ("", "must start with '/'"),
    ("/", "empty component"),
    ("/ip4/1.2.3.4", "missing transport (tcp or udp)"),
    ("/ip4", "missing ip4 value"),
    ("/ip4/1.2.3.4/tcp", "missing tcp port"),
    ("/ip4/1.2.3.4/udp/1", "missing quic-v1 after udp"),
    ("/ip4/1.2.3.4/udp/1/quic", "unsupported protocol 'quic' after udp (want quic-v1)"),
    ("/ip4/01.2.3.4/tcp/1", "invalid IPv4 address '01.2.3.4'"),
    ("/ip4/1.2.3/tcp/1", "invalid IPv4 address '1.2.3'"),
    ("/ip6/fe80::1%eth0/tcp/1", "IPv6 zone IDs are not allowed"),
    ("/ip6/1.2.3.4/tcp/1", "invalid IPv6 address '1.2.3.4'"),
    ("/dns4/exa_mple.com/tcp/1", "invalid DNS name 'exa_mple.com'"),
    ("/dns4/example.com./tcp/1", "invalid DNS name 'example.com.'"),
    ("/dns4/-bad.com/tcp/1", "invalid DNS name '-bad.com'"),
    ("/dns4/ab--c.com/tcp/1", "invalid DNS name 'ab--c.com'"),
    ("/dns4/xn--zz.com/tcp/1", "rejected by the multiaddr library"),
    ("/dns4/" + "a" * 64 + ".com/tcp/1", "invalid DNS name '" + "a" * 64 + ".com'"),
    ("/dns4/" + "a" * 90 + "/tcp/1", "invalid DNS name '" + "a" * 77 + "...'"),
    ("/ip4/1.2.3.4/tcp/0", "port must be 1-65535, got '0'"),
    ("/ip4/1.2.3.4/tcp/65536", "port must be 1-65535, got '65536'"),
    ("/ip4/1.2.3.4/tcp/01", "port must be 1-65535, got '01'"),
    ("/ip4/1.2.3.4/tcp/+1", "port must be 1-65535, got '+1'"),
    (
        "/unix/tmp/sock",
        "unsupported host protocol 'unix' (want ip4, ip6, dns, dns4 or dns6)",
    ),
    ("/ip4/1.2.3.4/sctp/1", "unsupported transport 'sctp' (want tcp or udp/quic-v1)"),
    ("/ip4/1.2.3.4/tcp/1/ws", "unsupported protocol 'ws' (want p2p or p2p-circuit)"),
    (
        "/ip4/1.2.3.4/tcp/1/p2p-circuit",
        "unsupported protocol 'p2p-circuit' (want p2p or p2p-circuit)",
    ),
    ("/ip4/1.2.3.4/tcp/1/p2p", "missing peer ID after p2p"),
    ("/ip4/1.2.3.4/tcp/1/p2p/QmNope", "bad peer ID: unsupported multihash code 0x03"),
    (
        f"/ip4/1.2.3.4/tcp/1/p2p/{OTHER}",
        "/p2p/ peer ID differs from the code's peer_id",
    ),
    (
        f"/ip4/1.2.3.4/tcp/1/p2p/{RELAY}/p2p-circuit/p2p/{OTHER}",
        "peer ID after p2p-circuit differs from the code's peer_id",
    ),
    (
        f"/ip4/1.2.3.4/tcp/1/p2p/{RELAY}/ws",
        "unsupported protocol 'ws' after p2p (want p2p-circuit)",
    ),
    (
        f"/ip4/1.2.3.4/tcp/1/p2p/{RELAY}/p2p-circuit/ws",
        "only /p2p/PEER may follow p2p-circuit",
    ),
    (
        f"/ip4/1.2.3.4/tcp/1/p2p/{RELAY}/p2p-circuit/p2p/{PEER}/ws",
        "only /p2p/PEER may follow p2p-circuit",
    ),
    ("/ip4/1.2.3.4/tcp/1\n/ip4/5.6.7.8/tcp/1", "port must be 1-65535, got '1\\n'"),
]


@pytest.mark.parametrize(("addr", "reason"), BAD)
def test_bad(addr: str, reason: str) -> None:
    with pytest.raises(ShareCodeError) as info:
        validate_multiaddr(addr, PEER, 3)
    message = str(info.value)
    assert message.startswith("bad multiaddr #3 ")
    assert message.endswith(": " + reason)
    assert "\n" not in message and "\r" not in message


def test_bounds_and_types() -> None:
    long = "/dns4/" + "a." * (MAX_ADDRESS_CHARS // 2) + "com/tcp/1"
    with pytest.raises(
        ShareCodeError,
        match=r"^bad multiaddr #1: too long \(\d+ characters, at most 1024\)$",
    ):
        validate_multiaddr(long, PEER)
    with pytest.raises(ShareCodeError, match="^bad multiaddr #2: expected a string, got int$"):
        validate_multiaddr(5, PEER, 2)
