"""node.rcmgr.kad_streams: which inbound KAD streams a DHT server serves (pure)."""

from __future__ import annotations

from p2pshare.node.rcmgr.kad_streams import Admission, KadInbound


def _fill(table: KadInbound, peers: int, each: int, group: str | None = None, now: float = 0.0) -> list[object]:
    keys = []
    for p in range(peers):
        for _ in range(each):
            key = object()
            assert table.admit(key, f"p{p}", group, now).admitted
            keys.append(key)
    return keys


def test_a_peer_and_an_address_group_each_hold_a_part() -> None:
    t = KadInbound(total=10, per_peer=2, per_group=3)
    a, b, c = object(), object(), object()
    assert t.admit(a, "p1", "1.2.3.4", 0.0) == Admission(True)
    assert t.admit(b, "p1", "1.2.3.4", 0.0).admitted
    assert not t.admit(object(), "p1", "9.9.9.9", 0.0).admitted  # its third: per peer
    assert t.admit(c, "p2", "1.2.3.4", 0.0).admitted
    assert not t.admit(object(), "p3", "1.2.3.4", 0.0).admitted  # the address's fourth: per group
    t.remove(a)
    assert t.admit(object(), "p3", "1.2.3.4", 0.0).admitted  # room again
    assert t.admit(object(), "p4", None, 0.0).admitted  # no address known: per peer and in all only


def test_a_full_table_takes_a_newcomer_in_place_of_the_biggest_sources_longest_waiting() -> None:
    t = KadInbound(total=6, per_peer=4, per_group=8)
    small = object()
    assert t.admit(small, "honest", "5.5.5.5", 0.0).admitted
    big = [object() for _ in range(5)]
    for i, key in enumerate(big):
        assert t.admit(key, f"bad{i % 3}", "6.6.6.6", 1.0 + i).admitted
    t.answered(big[3], 20.0)  # answered lately: waiting the shortest
    got = t.admit(object(), "new", "7.7.7.7", 30.0)
    assert got.admitted and got.evict is big[0]  # the big group's longest-waiting
    assert big[0] not in t and len(t) == 6
    t.remove(big[0])  # its handler leaving: nothing more happens
    assert len(t) == 6


def test_a_stream_at_work_is_never_ended_for_another() -> None:
    t = KadInbound(total=3, per_peer=4, per_group=8)
    keys = _fill(t, 1, 3)
    for key in keys:
        t.request(key)
    assert t.admit(object(), "new", None, 1.0) == Admission(False)  # every one at work
    t.answered(keys[1], 2.0)
    got = t.admit(object(), "new", None, 3.0)
    assert got.admitted and got.evict is keys[1]


def test_on_loopback_the_peer_holding_most_gives_way() -> None:
    t = KadInbound(total=5, per_peer=4, per_group=8)
    honest = object()
    assert t.admit(honest, "honest", None, 0.0).admitted  # waiting longest, but alone
    bad = _fill(t, 1, 4, now=1.0)
    got = t.admit(object(), "new", None, 2.0)
    assert got.evict is bad[0] and honest in t


def test_counts_drop_keys_that_hold_nothing() -> None:
    t = KadInbound(total=100, per_peer=4, per_group=8)
    keys = [object() for _ in range(50)]
    for i, key in enumerate(keys):
        assert t.admit(key, f"p{i}", f"10.0.0.{i}", 0.0).admitted
    for key in keys:
        t.remove(key)
    assert len(t) == 0 and not t._peers and not t._groups


def test_a_stream_whose_handler_reads_again_is_waiting_even_unanswered() -> None:
    t = KadInbound(total=2, per_peer=4, per_group=8)
    a, b = object(), object()
    assert t.admit(a, "p", None, 0.0).admitted and t.admit(b, "p", None, 1.0).admitted
    t.request(a)
    t.request(b)
    assert not t.admit(object(), "new", None, 2.0).admitted  # both at work
    t.waiting(b)  # its handler sent nothing and reads the next request
    got = t.admit(object(), "new", None, 3.0)
    assert got.admitted and got.evict is b
