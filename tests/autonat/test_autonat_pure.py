"""AutoNAT pure parts: codec, verdict tracker, server dial policy, rate limits."""

from __future__ import annotations

import pytest
import trio

from p2pshare.node.autonat.client import AutoNATConfig, Outcome, Reachability, ReachabilityTracker, ServerResult
from p2pshare.node.autonat.server import RateLimiter, ServerConfig, Slots, ip_group, plan_dial
from p2pshare.node.autonat.wire import (
    MAX_ADDRS,
    Dial,
    DialResponse,
    ResponseStatus,
    WireError,
    decode_message,
    encode_dial,
    encode_response,
    read_message,
)
from p2pshare.node.natinfo.addrs import TcpAddr, encode_addr
from p2pshare.node.pbwire import PbError, encode_uvarint, field_bytes, field_varint, frame, read_frame
from p2pshare.node.slots import SourceSlots

PID = bytes.fromhex("0024080112205d1e0d1b3a3f52e5c3b8d6a5b6f0b4a2b7e1f2c3d4e5f60718293a4b5c6d7e8f")
A1 = encode_addr("/ip4/100.64.1.2/tcp/4001")
A2 = encode_addr("/ip4/203.0.113.9/tcp/4002")


def _body(framed: bytes) -> bytes:
    from p2pshare.node.pbwire import decode_uvarint

    size, pos = decode_uvarint(framed)
    assert len(framed) - pos == size
    return framed[pos:]


def test_dial_roundtrip() -> None:
    msg = Dial(PID, (A1, A2))
    assert decode_message(_body(encode_dial(msg))) == msg


def test_response_roundtrip() -> None:
    for msg in (
        DialResponse(ResponseStatus.OK, "", A2),
        DialResponse(ResponseStatus.E_DIAL_ERROR, "dial failed"),
        DialResponse(ResponseStatus.E_DIAL_REFUSED, "x" * 1000),
    ):
        got = decode_message(_body(encode_response(msg)))
        assert isinstance(got, DialResponse)
        assert got.status == msg.status and got.addr == msg.addr
        assert got.text == msg.text[:256]


def test_go_encoding_is_read() -> None:
    # Field order and nesting as go-libp2p's generated code writes them.
    peer = field_bytes(1, PID) + field_bytes(2, A1)
    body = field_varint(1, 0) + field_bytes(2, field_bytes(1, peer)) + field_bytes(99, b"future")
    assert decode_message(body) == Dial(PID, (A1,))


@pytest.mark.parametrize(
    "body, why",
    [
        (field_varint(1, 7), "unknown"),
        (field_varint(1, 0), "without dial"),
        (field_varint(1, 1) + field_bytes(3, field_bytes(2, b"t")), "without status"),
        (field_varint(1, 1) + field_bytes(3, field_varint(1, 55)), "unknown response status"),
        (b"\x0a\xff\x01", "malformed"),
        (field_varint(1, 0) + field_bytes(2, field_bytes(1, field_bytes(1, b"x" * 200))), "too long"),
    ],
)
def test_bad_messages(body: bytes, why: str) -> None:
    with pytest.raises(WireError, match=why):
        decode_message(body)


def test_addrs_are_bounded() -> None:
    msg = Dial(PID, tuple(encode_addr(f"/ip4/203.0.113.1/tcp/{p}") for p in range(1, 40)))
    got = decode_message(_body(encode_dial(msg)))
    assert isinstance(got, Dial) and len(got.addrs) == MAX_ADDRS


async def test_read_frame_bounds() -> None:
    data = encode_uvarint(5000) + b"x" * 5000
    pos = 0

    async def read(n: int) -> bytes:
        nonlocal pos
        out = data[pos : pos + n]
        pos += len(out)
        return out

    with pytest.raises(WireError, match="exceeds"):
        await read_message(read)
    with pytest.raises(EOFError):
        data2 = frame(b"abc")[:-1]

        async def read2(n: int, buf: list[bytes] = [data2]) -> bytes:  # noqa: B006 - state kept across calls on purpose
            out, buf[0] = buf[0][:n], buf[0][n:]
            return out

        await read_frame(read2, 100)
    with pytest.raises(PbError):
        from p2pshare.node.pbwire import decode_uvarint

        decode_uvarint(b"\xff" * 11)


def _r(server: str, outcome: Outcome, addr: str | None = None) -> ServerResult:
    return ServerResult(server, outcome, addr)


def test_tracker_schedule_and_agreement() -> None:
    cfg = AutoNATConfig(boot_delay=5, retry_interval=30, refresh_interval=60)
    t = ReachabilityTracker(cfg, now=100.0)
    assert not t.due(104.9) and t.due(105.0)
    # 1 of 3 says OK, 2 say error: private, confirmed.
    v = t.complete_round(
        [_r("a", Outcome.OK, "/ip4/1.1.1.1/tcp/1"), _r("b", Outcome.DIAL_ERROR), _r("c", Outcome.DIAL_ERROR)],
        3,
        now=105.0,
    )
    assert v is not None and v.reachability is Reachability.PRIVATE and v.confirmed
    assert t.next_check_at() == 165.0
    # 1-1 this round (c refused), but c's error of the last round still counts: private.
    assert (
        t.complete_round([_r("a", Outcome.OK), _r("b", Outcome.DIAL_ERROR), _r("c", Outcome.REFUSED)], 3, now=165.0)
        is None
    )
    assert t.verdict.reachability is Reachability.PRIVATE and t.next_check_at() == 225.0
    # Two OKs flip it to public with the reached addrs.
    v = t.complete_round(
        [_r("a", Outcome.OK, "/ip4/1.1.1.1/tcp/1"), _r("b", Outcome.OK, "/ip4/1.1.1.1/tcp/1"), _r("c", Outcome.FAILED)],
        3,
        now=195.0,
    )
    assert v is not None and v.reachability is Reachability.PUBLIC and v.addrs == ("/ip4/1.1.1.1/tcp/1",)
    t.addrs_changed(200.0)
    assert t.due(200.0)


def test_single_server_is_unconfirmed() -> None:
    t = ReachabilityTracker(AutoNATConfig(), now=0.0)
    v = t.complete_round([_r("a", Outcome.DIAL_ERROR)], 1, now=5.0)
    assert v is not None and v.reachability is Reachability.PRIVATE and not v.confirmed
    # With three configured servers one answer is not enough.
    t2 = ReachabilityTracker(AutoNATConfig(), now=0.0)
    assert t2.complete_round([_r("a", Outcome.OK)], 3, now=5.0) is None
    assert t2.verdict.reachability is Reachability.UNKNOWN


def test_pick_servers_rotates() -> None:
    t = ReachabilityTracker(AutoNATConfig(servers_per_round=2), now=0.0)
    assert t.pick_servers(["a", "b", "c"]) == ["a", "b"]
    assert t.pick_servers(["a", "b", "c"]) == ["c", "a"]
    assert t.pick_servers([]) == []


def test_answers_from_different_rounds_add_up_until_they_expire() -> None:
    """The p2pshare peers a public node meets answer one by one: two OKs
    in two rounds confirm it; an answer older than ``evidence_ttl`` or
    given before our addresses changed no longer counts."""
    t = ReachabilityTracker(AutoNATConfig(evidence_ttl=100.0), now=0.0)
    assert t.complete_round([_r("sharer", Outcome.OK, "/ip4/1.1.1.1/tcp/1"), _r("js", Outcome.FAILED)], 5, 5.0) is None
    v = t.complete_round([_r("getter", Outcome.OK, "/ip4/1.1.1.1/tcp/1")], 5, now=20.0)
    assert v is not None and v.reachability is Reachability.PUBLIC and v.confirmed
    late = ReachabilityTracker(AutoNATConfig(evidence_ttl=100.0), now=0.0)
    late.complete_round([_r("sharer", Outcome.OK)], 5, now=5.0)
    assert late.complete_round([_r("getter", Outcome.OK)], 5, now=106.0) is None
    moved = ReachabilityTracker(AutoNATConfig(), now=0.0)
    moved.complete_round([_r("sharer", Outcome.OK)], 5, now=5.0)
    moved.addrs_changed(6.0)
    assert moved.complete_round([_r("getter", Outcome.OK)], 5, now=7.0) is None


def test_an_interface_change_forgets_old_answers_and_rechecks_paced() -> None:
    """The machine moved: answers from before no longer count, and a check
    comes soon but never sooner than ``min_gap`` after the last round (an
    interface that flaps cannot make a round per change)."""
    t = ReachabilityTracker(AutoNATConfig(min_gap=2.0, refresh_interval=600.0), now=0.0)
    t.complete_round([_r("sharer", Outcome.OK, "/ip4/1.1.1.1/tcp/1")], 5, now=10.0)
    t.interfaces_changed(10.5)
    assert not t.due(11.9) and t.due(12.0)
    # the answer from before the change does not add up with a new one
    assert t.complete_round([_r("getter", Outcome.OK, "/ip4/1.1.1.1/tcp/1")], 5, now=12.0) is None
    t.interfaces_changed(100.0)  # long after the last round: at once
    assert t.due(100.0)


def test_servers_without_evidence_go_last_and_new_ones_are_asked_soon() -> None:
    t = ReachabilityTracker(AutoNATConfig(servers_per_round=2, min_gap=2.0), now=0.0)
    t.complete_round([_r("js1", Outcome.FAILED), _r("js2", Outcome.REFUSED)], 4, now=5.0)
    assert t.pick_servers(["js1", "js2", "peer", "js3"]) == ["peer", "js3"]
    assert t.next_check_at() == 35.0
    t.server_added(6.0, known=5, server="js1")  # asked before: no hurry
    assert t.next_check_at() == 35.0
    t.server_added(6.0, known=5, server="new")  # never asked: soon, not sooner than min_gap
    assert t.next_check_at() == 7.0


def test_plan_dial_protections() -> None:
    cfg = ServerConfig()
    req = Dial(
        PID, (A1, A2, encode_addr("/ip4/203.0.113.9/tcp/4002/p2p-circuit"), encode_addr("/ip6/2001:db8::1/tcp/9"))
    )
    # LAN/other IPs are replaced by the observed IP; circuit and other families skipped.
    assert plan_dial(PID, "198.51.100.7", False, req, cfg) == [
        TcpAddr("198.51.100.7", 4001),
        TcpAddr("198.51.100.7", 4002),
    ]
    refused = [
        plan_dial(PID, "198.51.100.7", True, req, cfg),  # relayed
        plan_dial(PID, None, False, req, cfg),  # unknown IP
        plan_dial(PID, "100.64.3.4", False, req, cfg),  # private requester
        plan_dial(PID, "198.51.100.7", False, Dial(PID, ()), cfg),  # nothing to dial
    ]
    for r in refused:
        assert isinstance(r, DialResponse) and r.status == ResponseStatus.E_DIAL_REFUSED
    bad = plan_dial(b"other", "198.51.100.7", False, req, cfg)
    assert isinstance(bad, DialResponse) and bad.status == ResponseStatus.E_BAD_REQUEST
    assert plan_dial(PID, "127.0.0.1", False, req, ServerConfig(dial_private=True)) == [
        TcpAddr("127.0.0.1", 4001),
        TcpAddr("127.0.0.1", 4002),
    ]


def test_rate_limiter() -> None:
    lim = RateLimiter(ServerConfig(per_peer_max=2, global_max=3, window=10), now=0.0)
    assert lim.allow(b"a", 1) and lim.allow(b"a", 2) and not lim.allow(b"a", 3)
    assert lim.allow(b"b", 3) and not lim.allow(b"c", 4)  # global cap
    assert lim.allow(b"a", 10.0)  # new window


def test_rate_limiter_per_ip() -> None:
    lim = RateLimiter(ServerConfig(per_peer_max=3, per_ip_max=2, global_max=30, window=10), now=0.0)
    assert lim.allow(b"a", 1, "198.51.100.7") and lim.allow(b"b", 1, "198.51.100.7")
    assert not lim.allow(b"c", 2, "198.51.100.7")  # a third identity on the same IP
    assert lim.allow(b"c", 2, "198.51.100.8")
    assert lim.allow(b"d", 3, "2001:db8:1:2::1") and lim.allow(b"e", 3, "2001:db8:1:2:ffff::9")
    assert not lim.allow(b"f", 3, "2001:db8:1:2:abcd::1")  # same /64
    assert lim.allow(b"f", 3, "2001:db8:1:3::1")
    assert lim.allow(b"g", 10, "198.51.100.7")  # new window


def test_rate_limiter_tables_hold_only_what_was_allowed() -> None:
    cfg = ServerConfig(per_peer_max=1, per_ip_max=1, global_max=5, window=60)
    lim = RateLimiter(cfg, now=0.0)
    allowed = sum(
        lim.allow(i.to_bytes(4, "big"), 1, f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}") for i in range(10_000)
    )
    assert allowed == 5 and lim.tracked() == 10


def test_ip_group() -> None:
    assert ip_group("198.51.100.7") == "198.51.100.7"
    assert ip_group("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert ip_group("not an ip") == "not an ip"


def test_slots_total_and_per_key_no_queue() -> None:
    slots = Slots(total=3, per_key=2)
    assert slots.take("a") and slots.take("a") and not slots.take("a")  # per key
    assert slots.take("b") and not slots.take("c")  # in all
    slots.give_back("a")
    assert slots.take("c") and slots.in_use == 3
    for key in ("a", "b", "c"):
        slots.give_back(key)
    assert slots.in_use == 0 and slots.keys() == 0  # nothing kept for idle keys
    for i in range(1000):  # many keys come and go: the table never grows past total
        assert slots.take(i)
        assert slots.keys() <= 3
        slots.give_back(i)
    assert slots.keys() == 0


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        AutoNATConfig(agree=0)
    with pytest.raises(ValueError):
        ServerConfig(dial_timeout=0)
    with pytest.raises(ValueError):
        ServerConfig(max_jobs=0)
    assert trio  # imported for pytest-trio's async test above


def test_a_found_server_that_keeps_giving_no_answer_makes_room() -> None:
    from p2pshare.node.autonat.client import MISSES_TO_DROP

    t = ReachabilityTracker(AutoNATConfig(), 0.0)
    assert t.stale_server([]) is None and t.stale_server(["a", "b"]) is None  # nothing known against them
    for i in range(MISSES_TO_DROP - 1):
        t.complete_round([ServerResult("a", Outcome.FAILED), ServerResult("b", Outcome.REFUSED)], 3, float(i))
    assert t.stale_server(["a", "b"]) is None  # not yet
    t.complete_round([ServerResult("a", Outcome.FAILED), ServerResult("b", Outcome.DIAL_ERROR)], 3, 9.0)
    assert t.stale_server(["a", "b"]) == "a"  # b gave evidence: its misses start again
    assert t.stale_server(["b"]) is None  # only found servers are offered; configured ones never
    t.forget("a")
    assert t.stale_server(["a"]) is None


def test_source_slots_bound_many_identities_of_one_address() -> None:
    slots = SourceSlots(total=8, per_peer=2, per_group=3)
    assert slots.take("p1", "198.51.100.7") and slots.take("p1", "198.51.100.7")
    assert not slots.take("p1", "198.51.100.7")  # per peer
    assert slots.take("p2", "198.51.100.7")
    assert not slots.take("p3", "198.51.100.7")  # a fresh identity, the same address: per group
    assert slots.in_use == 3  # the refused take gave its peer slot back
    assert slots.take("p3", "203.0.113.9") and slots.take("p4", None)  # other addresses; no address
    slots.give_back("p2", "198.51.100.7")
    assert slots.take("p5", "198.51.100.7")
    for peer, group in (("p1", "198.51.100.7"), ("p1", "198.51.100.7"), ("p5", "198.51.100.7")):
        slots.give_back(peer, group)
    slots.give_back("p3", "203.0.113.9")
    slots.give_back("p4", None)
    assert slots.in_use == 0 and slots.peers.keys() == 0 and slots.groups.keys() == 0
