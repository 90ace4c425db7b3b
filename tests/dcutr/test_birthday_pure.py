"""Birthday port probing, pure parts: odds, port choice, pacing, the exchange, fd limits."""

from __future__ import annotations

import random

import pytest

from p2pshare.node.dcutr.birthday import (
    EASY_PROBES,
    FD_CAP,
    FD_HEADROOM,
    HARD_DIALS,
    HARD_SOCKETS,
    PORT_HIGH,
    PORT_LOW,
    BirthdayConfig,
    EasyBudget,
    Pacer,
    easy_answer,
    hard_connect,
    hard_target,
    match_probability,
    nofile_target,
    pick_ports,
    sockets_allowed,
)
from p2pshare.node.dcutr.wire import HolePunch, MsgType, WireError, decode, encode
from p2pshare.node.natinfo.addrs import TcpAddr, decode_addrs, encode_addr
from p2pshare.node.natinfo.classify import Mapping, classify
from p2pshare.node.natinfo.observed import Sighting, symmetric_ip
from p2pshare.node.natinfo.stun import Observation
from p2pshare.node.pbwire import decode_uvarint

HARD_IP = "203.0.113.6"
EASY = TcpAddr("203.0.113.2", 4001)


def _msg(framed: bytes) -> HolePunch:
    size, pos = decode_uvarint(framed)
    assert len(framed) - pos == size
    return decode(framed[pos:])


def test_default_round_odds_and_costs_are_what_the_docs_say() -> None:
    cfg = BirthdayConfig()
    assert cfg.probability() > 0.999  # one round
    assert 1 - (1 - cfg.probability()) ** cfg.rounds > 0.9999999
    # Tailscale's figure for 1024 probes x 256 sockets.
    assert match_probability(1024, 256) == pytest.approx(0.983, abs=0.001)
    # Bounded: fds per side, packets per round (+ at most two SYN retransmits).
    assert EASY_PROBES <= 1024 and HARD_SOCKETS <= 512 and HARD_DIALS <= 1024
    assert 3 * (EASY_PROBES + HARD_DIALS) < 10_000


def test_match_probability_edges() -> None:
    assert match_probability(0, 256) == 0.0
    assert match_probability(1024, 0) == 0.0
    space = PORT_HIGH - PORT_LOW + 1
    assert match_probability(space, 1) == 1.0
    assert match_probability(512, 256) < match_probability(1024, 256) < match_probability(1024, 512)


def test_pick_ports_are_distinct_and_in_the_nat_range() -> None:
    ports = pick_ports(random.Random(1), EASY_PROBES)
    assert len(ports) == len(set(ports)) == EASY_PROBES
    assert all(PORT_LOW <= p <= PORT_HIGH for p in ports)
    assert ports == pick_ports(random.Random(1), EASY_PROBES)  # seeded: reproducible
    assert len(pick_ports(random.Random(1), 10**6)) == PORT_HIGH - PORT_LOW + 1


def test_pacer_spreads_sends_over_ticks_and_never_exceeds_total() -> None:
    p = Pacer(total=300, batch=128, tick=0.01, start=100.0)
    assert p.due(100.0) == 128
    assert p.due(100.0) == 0  # nothing more within the same tick
    assert p.next_at() == pytest.approx(100.01)
    assert p.due(100.0101) == 128
    assert not p.done
    assert p.due(105.0) == 44  # late: the rest at once, never more than total
    assert p.done and p.due(200.0) == 0
    with pytest.raises(ValueError):
        Pacer(total=1, batch=0, tick=0.01, start=0.0)


def test_exchange_roundtrip_gives_the_hard_side_the_easy_mapping() -> None:
    connect = _msg(hard_connect(HARD_IP, 4001))
    assert connect.type is MsgType.CONNECT
    assert [a.ip for a in decode_addrs(connect.obs_addrs, 4)] == [HARD_IP]
    cfg = BirthdayConfig(easy_probes=64)
    plan = easy_answer(connect, [EASY], random.Random(2), cfg)
    assert plan.ip == HARD_IP and len(set(plan.ports)) == 64
    assert hard_target(_msg(plan.reply)) == EASY


def test_easy_side_refuses_without_a_known_mapping_or_public_peer_ip() -> None:
    connect = _msg(hard_connect(HARD_IP, 4001))
    with pytest.raises(WireError):
        easy_answer(connect, [], random.Random(0), BirthdayConfig())  # our NAT not known endpoint-independent
    with pytest.raises(WireError):
        easy_answer(connect, [TcpAddr("100.64.1.2", 4001)], random.Random(0), BirthdayConfig())
    private = HolePunch(MsgType.CONNECT, (encode_addr("/ip4/100.64.2.2/tcp/4001"),))
    with pytest.raises(WireError):
        easy_answer(private, [EASY], random.Random(0), BirthdayConfig())
    with pytest.raises(WireError):
        easy_answer(HolePunch(MsgType.SYNC), [EASY], random.Random(0), BirthdayConfig())
    with pytest.raises(ValueError):
        hard_connect("100.64.2.2", 4001)  # never announce a private address as our NAT's
    with pytest.raises(WireError):
        hard_target(_msg(encode(HolePunch(MsgType.CONNECT))))  # the easy side's refusal


def test_nofile_limit_is_raised_only_when_needed_and_bounded() -> None:
    assert nofile_target(soft=20000, hard=20000, in_use=50, need=512) is None
    assert nofile_target(soft=1024, hard=1_048_576, in_use=100, need=1024) == 100 + 1024 + FD_HEADROOM
    assert nofile_target(soft=1024, hard=1_048_576, in_use=100, need=100_000) == FD_CAP
    assert nofile_target(soft=1024, hard=-1, in_use=100, need=100_000) == FD_CAP  # RLIM_INFINITY
    assert nofile_target(soft=1024, hard=1024, in_use=100, need=1024) is None  # cannot go higher
    assert sockets_allowed(soft=1024, in_use=100, need=1024) == 1024 - 100 - FD_HEADROOM
    assert sockets_allowed(soft=200, in_use=100, need=1024) == 0
    assert sockets_allowed(soft=20000, in_use=100, need=512) == 512


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        BirthdayConfig(hard_sockets=512, hard_dials=100)
    with pytest.raises(ValueError):
        BirthdayConfig(easy_probes=0)
    with pytest.raises(ValueError):
        BirthdayConfig(hard_window=0)


def test_nat_typing_tells_the_symmetric_side_its_ip() -> None:
    local = ("100.64.2.2", 4001)
    sym = classify(
        [
            Observation(local, ("203.0.113.10", 3478), (HARD_IP, 40001)),
            Observation(local, ("203.0.113.10", 3479), (HARD_IP, 51234)),
        ]
    )
    assert sym.mapping is Mapping.ENDPOINT_DEPENDENT and sym.public is None and sym.public_ip == HARD_IP
    cone = classify(
        [
            Observation(local, ("203.0.113.10", 3478), (HARD_IP, 4001)),
            Observation(local, ("203.0.113.10", 3479), (HARD_IP, 4001)),
        ]
    )
    assert cone.mapping is Mapping.ENDPOINT_INDEPENDENT and cone.public_ip == HARD_IP
    # From identify: ports changed, one public IP -> symmetric; kept -> not.
    assert symmetric_ip([Sighting(HARD_IP, 40001, 5000), Sighting(HARD_IP, 40002, 5001)]) == HARD_IP
    assert symmetric_ip([Sighting(HARD_IP, 5000, 5000), Sighting(HARD_IP, 5001, 5001)]) is None
    assert symmetric_ip([Sighting(HARD_IP, 1, 5000), Sighting("198.51.100.7", 2, 5001)]) is None
    assert symmetric_ip([Sighting("100.64.2.1", 1, 5000)]) is None


def test_easy_budget_bounds_rounds_per_peer_and_in_all() -> None:
    b = EasyBudget(per_minute=4, per_peer=2)
    assert b.allow("p1", 0.0) and b.allow("p1", 1.0)
    assert not b.allow("p1", 2.0)  # a peer's two rounds, then no more this minute
    assert b.allow("p2", 2.0) and b.allow("p3", 3.0)
    assert not b.allow("p4", 4.0)  # four rounds a minute in all
    assert b.allow("p4", 60.5)  # the first two have aged out
    assert b.allow("p1", 61.5)
