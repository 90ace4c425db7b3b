"""The mDNS decisions with fake time: what is announced, answered, learned, forgotten."""

from __future__ import annotations

from p2pshare.node.mdns import core, wire
from p2pshare.node.mdns.core import MdnsCore, random_peer_name

A = "12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
B = "12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
LAN_A = ["/ip4/100.64.1.2/tcp/4001", "/ip4/127.0.0.1/tcp/4001", "/ip4/198.51.100.7/tcp/4001"]
LAN_B = ["/ip4/100.64.1.3/tcp/5001", "/ip4/169.254.3.3/tcp/5001"]


def _pair(now: float = 0.0) -> tuple[MdnsCore, MdnsCore]:
    return MdnsCore(A, lambda: LAN_A, now, peer_name="a" * 40), MdnsCore(B, lambda: LAN_B, now, peer_name="b" * 40)


def test_only_lan_addresses_are_announced() -> None:
    a, _ = _pair()
    assert a.lan_addrs() == [f"/ip4/100.64.1.2/tcp/4001/p2p/{A}"]


def test_no_lan_address_means_no_answer() -> None:
    node = MdnsCore(A, lambda: ["/ip4/127.0.0.1/tcp/1", "/ip4/203.0.113.5/tcp/1"], 0.0)
    assert node.announcement() is None


def test_query_answer_learn() -> None:
    a, b = _pair()
    query = b.query(0.0)
    assert query is not None
    answer, found = a.on_packet(query, 0.1)
    assert found == [] and answer is not None
    answer_b, learned = b.on_packet(answer, 0.2)
    assert answer_b is None
    assert learned == [core.Found(A, (f"/ip4/100.64.1.2/tcp/4001/p2p/{A}",))]
    assert b.addrs_of(A, 1.0) == [f"/ip4/100.64.1.2/tcp/4001/p2p/{A}"]


def test_the_same_answer_twice_is_news_once() -> None:
    a, b = _pair()
    hello = a.announcement()
    assert hello is not None
    assert len(b.on_packet(hello, 0.0)[1]) == 1
    assert b.on_packet(hello, 0.5)[1] == []


def test_own_answer_looped_back_is_ignored() -> None:
    a, _ = _pair()
    hello = a.announcement()
    assert hello is not None
    assert a.on_packet(hello, 0.0) == (None, [])


def test_answers_are_rate_limited() -> None:
    a, b = _pair()
    query = wire.encode(wire.Message(questions=(wire.Question(core.SERVICE, wire.RecordType.PTR),)))
    answers = [a.on_packet(query, t / 10)[0] for t in range(30)]  # 30 queries in 3 s
    assert sum(x is not None for x in answers) == 3
    assert a.suppressed_answers == 27
    del b


def test_a_query_right_after_our_announcement_is_answered() -> None:
    a, b = _pair()
    assert a.announcement() is not None
    query = b.query(0.1)
    assert query is not None
    assert a.on_packet(query, 0.1)[0] is not None


def test_unrelated_queries_get_no_answer() -> None:
    a, _ = _pair()
    query = wire.encode(wire.Message(questions=(wire.Question("_http._tcp.local", wire.RecordType.PTR),)))
    assert a.on_packet(query, 5.0) == (None, [])


def test_query_schedule_backs_off() -> None:
    a, _ = _pair(now=100.0)
    times = []
    now = 100.0
    for _ in range(5):
        now = a.next_query_at()
        assert a.query(now - 0.01) is None  # never early
        assert a.query(now) is not None
        times.append(now - 100.0)
    assert times == [0.0, 1.0, 3.0, 63.0, 123.0]


def _answer_from(peer: str, addrs: list[str], ttl: int = 120, name: str = "zz" * 20) -> bytes:
    full = f"{name}.{core.SERVICE}"
    ptr = wire.Record(core.SERVICE, wire.RecordType.PTR, ttl, target=full)
    txts = tuple(
        wire.Record(full, wire.RecordType.TXT, ttl, texts=(f"dnsaddr={a}/p2p/{peer}".encode(),)) for a in addrs
    )
    return wire.encode(wire.Message(flags=wire.FLAG_RESPONSE, answers=(ptr,), additionals=txts))


def test_loopback_public_and_foreign_addresses_are_not_learned() -> None:
    _, b = _pair()
    pkt = _answer_from(A, ["/ip4/127.0.0.1/tcp/1", "/ip4/198.51.100.1/tcp/1", "/ip4/10.1.2.3/tcp/9"])
    assert b.on_packet(pkt, 0.0)[1] == [core.Found(A, (f"/ip4/10.1.2.3/tcp/9/p2p/{A}",))]


def test_txt_without_a_ptr_is_ignored() -> None:
    _, b = _pair()
    full = f"{'q' * 40}.{core.SERVICE}"
    txt = wire.Record(full, wire.RecordType.TXT, 120, texts=(f"dnsaddr=/ip4/10.0.0.1/tcp/1/p2p/{A}".encode(),))
    pkt = wire.encode(wire.Message(flags=wire.FLAG_RESPONSE, answers=(txt,)))
    assert b.on_packet(pkt, 0.0)[1] == []


def test_peers_expire_with_their_ttl() -> None:
    _, b = _pair()
    b.on_packet(_answer_from(A, ["/ip4/10.0.0.1/tcp/1"], ttl=10), 0.0)
    assert b.addrs_of(A, 9.0)
    assert b.addrs_of(A, 10.0) == []


def test_goodbye_forgets_the_peer() -> None:
    _, b = _pair()
    b.on_packet(_answer_from(A, ["/ip4/10.0.0.1/tcp/1"]), 0.0)
    b.on_packet(_answer_from(A, ["/ip4/10.0.0.1/tcp/1"], ttl=0), 1.0)
    assert b.addrs_of(A, 1.0) == []


def test_remembered_peers_are_bounded() -> None:
    _, b = _pair()
    for i in range(core.MAX_PEERS * 2):
        peer = f"12D3KooW{i:044d}"
        b.on_packet(_answer_from(peer, [f"/ip4/10.0.{i // 250}.{i % 250 + 1}/tcp/1"], name=f"n{i:040d}"), float(i))
    assert len(b.peers(float(core.MAX_PEERS * 2))) == core.MAX_PEERS
    assert b.addrs_of(f"12D3KooW{core.MAX_PEERS * 2 - 1:044d}", float(core.MAX_PEERS * 2))


def test_addresses_per_peer_are_bounded() -> None:
    _, b = _pair()
    pkt = _answer_from(A, [f"/ip4/10.0.0.{i}/tcp/1" for i in range(1, 30)])
    found = b.on_packet(pkt, 0.0)[1]
    assert len(found[0].addrs) == core.MAX_ADDRS_PER_PEER


def test_garbage_is_counted_not_raised() -> None:
    _, b = _pair()
    assert b.on_packet(b"\x00\x01", 0.0) == (None, [])
    assert b.dropped_packets == 1


def test_peer_names_are_spec_sized_and_random() -> None:
    names = {random_peer_name() for _ in range(20)}
    assert len(names) == 20
    assert all(32 <= len(n) <= 63 and n.isalnum() for n in names)
