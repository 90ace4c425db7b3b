"""DCUtR pure parts: codec, the two exchange machines talking in memory, address policy."""

from __future__ import annotations

import ipaddress
import random

import pytest

from p2pshare.node.dcutr.policy import (
    InitiatorExchange,
    PunchConfig,
    Ready,
    ResponderExchange,
    Role,
    our_addrs,
    redial_delay,
    select_targets,
)
from p2pshare.node.dcutr.wire import MAX_ADDRS, HolePunch, MsgType, WireError, decode, encode
from p2pshare.node.natinfo.addrs import TcpAddr, encode_addr
from p2pshare.node.pbwire import decode_uvarint, field_bytes, field_varint

PUB_A = TcpAddr("203.0.113.2", 4001)
LAN_A = TcpAddr("100.64.1.2", 4001)
PUB_B = TcpAddr("203.0.113.6", 4001)
LAN_B = TcpAddr("100.64.2.2", 4001)


def body(framed: bytes) -> bytes:
    size, pos = decode_uvarint(framed)
    assert len(framed) - pos == size
    return framed[pos:]


def test_codec_roundtrip_and_go_bytes() -> None:
    msg = HolePunch(MsgType.CONNECT, (encode_addr(PUB_A.multiaddr()),))
    assert decode(body(encode(msg))) == msg
    # As go-libp2p writes it: type=100, one ObsAddrs, plus an unknown field.
    raw = field_varint(1, 300) + field_bytes(9, b"x")
    assert decode(raw) == HolePunch(MsgType.SYNC)


@pytest.mark.parametrize(
    "raw, why",
    [
        (b"", "without type"),
        (field_varint(1, 5), "unknown"),
        (b"\x12\x05ab", "malformed"),
        (b"x" * 5000, "too large"),
    ],
)
def test_codec_rejects(raw: bytes, why: str) -> None:
    with pytest.raises(WireError, match=why):
        decode(raw)


def test_codec_bounds_addresses() -> None:
    raw = field_varint(1, 100) + b"".join(
        field_bytes(2, encode_addr(f"/ip4/203.0.113.9/tcp/{p}")) for p in range(1, 40)
    )
    assert len(decode(raw).obs_addrs) == MAX_ADDRS


def test_exchange_in_memory() -> None:
    """Initiator B and responder A run one round through bytes only."""
    cfg = PunchConfig(offsets=(0.0,))
    b = InitiatorExchange([PUB_B, LAN_B], cfg, round_no=1)
    a = ResponderExchange([PUB_A, LAN_A])
    connect = b.start(now=10.0)
    reply = a.receive(decode(body(connect)), now=10.05)
    assert isinstance(reply, bytes)
    sync, b_ready = b.receive(decode(body(reply)), now=10.1)
    a_ready = a.receive(decode(body(sync)), now=10.15)
    assert isinstance(a_ready, Ready)
    # Each dials only the other's public address (LAN addrs of another NAT dropped).
    assert a_ready.targets == (PUB_B,) and b_ready.targets == (PUB_A,)
    # B dials RTT/2 after sending SYNC; A at once on SYNC.
    assert b_ready.rtt == pytest.approx(0.1) and b_ready.dial_at == pytest.approx(10.15)
    assert a_ready.dial_at == 10.15
    assert Role.RESPONDER.security_client and not Role.INITIATOR.security_client


def test_exchange_rejects_out_of_order() -> None:
    a = ResponderExchange([PUB_A])
    with pytest.raises(WireError, match="expected CONNECT"):
        a.receive(HolePunch(MsgType.SYNC), 0.0)
    b = InitiatorExchange([PUB_B], PunchConfig(), 1)
    with pytest.raises(WireError):
        b.receive(HolePunch(MsgType.CONNECT, (encode_addr(PUB_A.multiaddr()),)), 0.0)  # before start
    b.start(0.0)
    with pytest.raises(WireError, match="no address"):
        b.receive(HolePunch(MsgType.CONNECT, (encode_addr("/ip4/127.0.0.1/tcp/1"),)), 0.1)


def test_an_empty_connect_is_final_a_loopback_one_is_not() -> None:
    """An initiator with nothing to announce sends CONNECT with no address:
    the responder learns no later round can work (the receiver stops waiting)."""
    a = ResponderExchange([PUB_A])
    with pytest.raises(WireError, match="no address"):
        a.receive(HolePunch(MsgType.CONNECT, ()), 0.0)
    assert a.nothing_offered
    b = ResponderExchange([PUB_A])
    with pytest.raises(WireError, match="no address we can dial"):
        b.receive(HolePunch(MsgType.CONNECT, (encode_addr("/ip4/127.0.0.1/tcp/1"),)), 0.0)
    assert not b.nothing_offered


def test_offsets_and_sync_cap() -> None:
    cfg = PunchConfig(offsets=(0.0, -0.02, 0.02), max_sync_wait=0.5)
    assert [cfg.offset(r) for r in (1, 2, 3, 4)] == [0.0, -0.02, 0.02, 0.0]
    b = InitiatorExchange([PUB_B], cfg, round_no=3)
    b.start(0.0)
    _, ready = b.receive(HolePunch(MsgType.CONNECT, (encode_addr(PUB_A.multiaddr()),)), now=4.0)
    assert ready.dial_at == pytest.approx(4.0 + 0.5 + 0.02)  # RTT/2 capped, plus the offset


def test_select_targets_policy() -> None:
    theirs = [
        encode_addr(a)
        for a in (
            "/ip4/100.64.2.2/tcp/4001",
            "/ip4/203.0.113.6/tcp/4001",
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/203.0.113.6/tcp/4001/p2p-circuit",
            "/ip6/2001:db8::1/tcp/4001",
            "/ip4/10.1.1.1/udp/4001/quic-v1",
        )
    ]
    # Another network: only the public address, no LAN/loopback/circuit/QUIC, no IPv6 without ours.
    assert select_targets(theirs, [PUB_A, LAN_A]) == [PUB_B]
    # Same public IP (both behind one NAT): their LAN address is worth a try, public first.
    assert select_targets(theirs, [TcpAddr("203.0.113.6", 4002), TcpAddr("100.64.2.3", 4001)]) == [PUB_B, LAN_B]
    # On one of our own networks.
    nets = [ipaddress.ip_network("100.64.2.0/24")]
    assert select_targets(theirs, [PUB_A], nets) == [PUB_B, LAN_B]
    assert TcpAddr("127.0.0.1", 4001) in select_targets(theirs, [PUB_A], allow_loopback=True)
    assert select_targets([b"\xff\x00garbage"], [PUB_A]) == []


def test_our_addrs_order() -> None:
    listen = [TcpAddr("127.0.0.1", 4001), LAN_A, TcpAddr("0.0.0.0", 4001)]
    assert our_addrs([PUB_A], listen) == [PUB_A, LAN_A]


def test_config_validation_and_jitter() -> None:
    with pytest.raises(ValueError):
        PunchConfig(rounds=0)
    with pytest.raises(ValueError):
        PunchConfig(redial_min=0.5, redial_max=0.1)
    cfg = PunchConfig(redial_min=0.01, redial_max=0.02)
    rng = random.Random(1)
    assert all(0.01 <= redial_delay(rng, cfg) <= 0.02 for _ in range(100))


def test_fresh_ports_only_when_the_mapping_keeps_port_numbers() -> None:
    from p2pshare.node.dcutr.policy import fresh_port_ok, with_port

    assert fresh_port_ok([PUB_A], 4001)  # port-preserving NAT
    assert not fresh_port_ok([TcpAddr("203.0.113.2", 61000)], 4001)  # NAT renumbered the port
    assert not fresh_port_ok([], 4001)  # no observation: cannot tell
    assert with_port([PUB_A, LAN_A, TcpAddr("100.64.1.2", 5000)], 4001, 40123) == [
        TcpAddr("203.0.113.2", 40123),
        TcpAddr("100.64.1.2", 40123),
        TcpAddr("100.64.1.2", 5000),
    ]
    with pytest.raises(ValueError):
        PunchConfig(fresh_rounds=0)
    with pytest.raises(ValueError):
        PunchConfig(fresh_round_window=0)


def test_public_dial_addrs_keeps_only_public_tcp_addresses() -> None:
    from p2pshare.node.dcutr.policy import public_dial_addrs

    addrs = [
        "/ip4/203.0.113.2/tcp/4001",
        "/ip4/100.64.1.2/tcp/4001",
        "/ip4/127.0.0.1/tcp/4001",
        "/ip4/203.0.113.9/tcp/4001/p2p/12D3KooWP6Kfd9W78AgMKSHQZrn72V9sefgkhxDYZM4dXTFaRz4h/p2p-circuit",
    ]
    assert public_dial_addrs(addrs) == ["/ip4/203.0.113.2/tcp/4001"]
    assert public_dial_addrs(addrs, allow_loopback=True) == ["/ip4/203.0.113.2/tcp/4001", "/ip4/127.0.0.1/tcp/4001"]
