"""The DCUtR round schedule (pure): every transition, with fake times and results."""

from __future__ import annotations

import pytest

from p2pshare.node.dcutr.policy import PunchConfig, Ready, Upgraded, UpgradeFailed
from p2pshare.node.dcutr.schedule import (
    LATE_ARRIVAL,
    LATE_ARRIVAL_FRESH,
    NEXT_ROUND_GRACE,
    UNREADY_TRIES,
    UNREADY_WAITS,
    DialDirect,
    Exchange,
    Finish,
    InitiatorSchedule,
    Punch,
    ResponderRounds,
    punch_times,
)
from p2pshare.node.natinfo.addrs import TcpAddr

PEER = "12D3KooWpeer"
TARGET = (TcpAddr("203.0.113.6", 4001),)


def ready(now: float, rtt: float = 0.002, wait: float = 0.001) -> Ready:
    return Ready(TARGET, now + wait, rtt)


def finish(action: object) -> Upgraded | UpgradeFailed:
    assert isinstance(action, Finish)
    return action.event


def test_already_direct_finishes_at_once() -> None:
    s = InitiatorSchedule(PEER, PunchConfig(), 10.0)
    ev = finish(s.start(10.0, already_direct=True, public_addrs=True))
    assert isinstance(ev, Upgraded) and ev.method == "already-direct" and ev.rounds == 0


def test_public_addrs_dial_directly_first_and_win() -> None:
    s = InitiatorSchedule(PEER, PunchConfig(unilateral_timeout=0.75), 10.0)
    a = s.start(10.0, already_direct=False, public_addrs=True)
    assert a == DialDirect(10.75)
    ev = finish(s.direct_done(10.2, "/ip4/203.0.113.6/tcp/4001"))
    assert isinstance(ev, Upgraded) and ev.method == "unilateral" and ev.elapsed == pytest.approx(0.2)
    assert ev.addr == "/ip4/203.0.113.6/tcp/4001" and ev.dials == 1


def test_failed_direct_dial_goes_to_round_one() -> None:
    s = InitiatorSchedule(PEER, PunchConfig(), 10.0)
    s.start(10.0, already_direct=False, public_addrs=True)
    assert s.direct_done(10.75, None) == Exchange(1)


def test_no_public_addrs_or_unilateral_off_starts_rounds() -> None:
    assert InitiatorSchedule(PEER, PunchConfig(), 0.0).start(0.0, already_direct=False, public_addrs=False) == Exchange(
        1
    )
    s = InitiatorSchedule(PEER, PunchConfig(unilateral_timeout=0), 0.0)
    assert s.start(0.0, already_direct=False, public_addrs=True) == Exchange(1)


def test_listen_port_round_uses_the_long_window_and_late_arrival() -> None:
    cfg = PunchConfig()
    s = InitiatorSchedule(PEER, cfg, 0.0)
    s.start(0.0, already_direct=False, public_addrs=False)
    p = s.exchanged(1.0, ready(1.0), fresh=False)
    assert p == Punch(1, 1.001, 1.001 + cfg.round_window, 1.001 + cfg.round_window + LATE_ARRIVAL)


def test_fresh_port_round_is_short_but_at_least_some_rtts() -> None:
    cfg = PunchConfig(fresh_round_window=0.3, window_rtts=3.0)
    s = InitiatorSchedule(PEER, cfg, 0.0)
    s.start(0.0, already_direct=False, public_addrs=False)
    p = s.exchanged(1.0, ready(1.0, rtt=0.002), fresh=True)
    assert isinstance(p, Punch) and p.until - p.dial_at == pytest.approx(0.3)
    assert p.late_until - p.until == pytest.approx(LATE_ARRIVAL_FRESH)
    # A slow path (200 ms RTT): the window stretches to 3 RTTs.
    assert punch_times(cfg, ready(0.0, rtt=0.2), True, 0.0)[1] - 0.001 == pytest.approx(0.6)


def test_dial_time_in_the_past_dials_now() -> None:
    dial_at, until, _ = punch_times(PunchConfig(), Ready(TARGET, 5.0, 0.01), False, 7.0)
    assert dial_at == 7.0 and until == 7.0 + PunchConfig().round_window


def test_win_reports_round_dials_rtt_and_address() -> None:
    s = InitiatorSchedule(PEER, PunchConfig(), 0.0)
    s.start(0.0, already_direct=False, public_addrs=False)
    s.exchanged(0.1, ready(0.1, rtt=0.004), fresh=True)
    ev = finish(s.punched(0.3, ("/ip4/203.0.113.6/tcp/4001", 17)))
    assert isinstance(ev, Upgraded) and ev.method == "hole-punch"
    assert (ev.rounds, ev.dials, ev.rtt, ev.elapsed) == (1, 17, 0.004, pytest.approx(0.3))


def _lose_rounds(s: InitiatorSchedule, fresh: bool) -> list[object]:
    actions: list[object] = [s.start(0.0, already_direct=False, public_addrs=False)]
    t = 0.0
    while isinstance(actions[-1], Exchange):
        t += 1
        s.exchanged(t, ready(t), fresh=fresh)
        actions.append(s.punched(t + 0.5, None))
    return actions


def test_listen_port_gives_up_after_rounds() -> None:
    actions = _lose_rounds(InitiatorSchedule(PEER, PunchConfig(rounds=4, fresh_rounds=20), 0.0), fresh=False)
    assert [a for a in actions if isinstance(a, Exchange)] == [Exchange(n) for n in range(1, 5)]
    ev = finish(actions[-1])
    assert isinstance(ev, UpgradeFailed) and ev.rounds == 4 and ev.reason == "no direct connection after 4 round(s)"


def test_fresh_ports_get_fresh_rounds() -> None:
    actions = _lose_rounds(InitiatorSchedule(PEER, PunchConfig(rounds=4, fresh_rounds=20), 0.0), fresh=True)
    assert len([a for a in actions if isinstance(a, Exchange)]) == 20
    ev = finish(actions[-1])
    assert isinstance(ev, UpgradeFailed) and ev.rounds == 20


def test_fresh_rounds_never_fewer_than_rounds() -> None:
    actions = _lose_rounds(InitiatorSchedule(PEER, PunchConfig(rounds=5, fresh_rounds=2), 0.0), fresh=True)
    assert len([a for a in actions if isinstance(a, Exchange)]) == 5


def test_exchange_failure_tries_the_next_round_while_the_relay_lives() -> None:
    s = InitiatorSchedule(PEER, PunchConfig(rounds=2), 0.0)
    s.start(0.0, already_direct=False, public_addrs=False)
    assert s.exchange_failed(1.0, "stream reset", fresh=False, give_up=False) == Exchange(2)
    ev = finish(s.exchange_failed(2.0, "stream reset", fresh=False, give_up=False))
    assert isinstance(ev, UpgradeFailed) and ev.reason == "round 2: stream reset" and ev.rounds == 2


def test_exchange_failure_ends_when_the_relay_is_gone_or_direct_exists() -> None:
    s = InitiatorSchedule(PEER, PunchConfig(rounds=4), 0.0)
    s.start(0.0, already_direct=False, public_addrs=False)
    ev = finish(s.exchange_failed(1.5, "no address", fresh=False, give_up=True))
    assert isinstance(ev, UpgradeFailed) and ev.rounds == 1 and ev.elapsed == 1.5
    assert ev.reason == "round 1: no address"


def test_peer_without_a_dialable_address_gets_time_not_rounds() -> None:
    # natlab limited js-cone: the receiver learns its mapping from the relay
    # by identify just after the sharer's first CONNECT; spinning through the
    # 20 fresh rounds at once used them all up in 0.16 s.
    s = InitiatorSchedule(PEER, PunchConfig(rounds=2, fresh_rounds=3), 0.0)
    assert s.start(0.0, already_direct=False, public_addrs=False) == Exchange(1)
    now, ats = 0.0, []
    for n in range(2, 2 + UNREADY_TRIES):
        action = s.exchange_failed(now, "no address we can dial", fresh=True, give_up=False, peer_unready=True)
        assert isinstance(action, Exchange) and action.round_no == n
        ats.append(action.at - now)
        now = action.at
    assert ats == list(UNREADY_WAITS) and all(0 < w < NEXT_ROUND_GRACE for w in ats)
    # ... and the round budget is still whole: 3 fresh rounds can be lost.
    for _ in range(3):
        action = s.exchanged(now, ready(now), fresh=True)
        assert isinstance(action, Punch)
        nxt = s.punched(action.late_until, None)
        now = action.late_until
    ev = finish(nxt)
    assert isinstance(ev, UpgradeFailed) and ev.rounds == 1 + UNREADY_TRIES + 2


def test_peer_that_never_offers_an_address_is_given_up_on() -> None:
    s = InitiatorSchedule(PEER, PunchConfig(rounds=4, fresh_rounds=20), 0.0)
    s.start(0.0, already_direct=False, public_addrs=False)
    actions = [
        s.exchange_failed(float(i), "no address we can dial", fresh=True, give_up=False, peer_unready=True)
        for i in range(UNREADY_TRIES + 1)
    ]
    ev = finish(actions[-1])
    assert isinstance(ev, UpgradeFailed) and ev.reason.endswith("no address we can dial")
    assert ev.rounds == UNREADY_TRIES + 1


def test_an_unready_peer_on_a_dead_relay_ends_at_once() -> None:
    s = InitiatorSchedule(PEER, PunchConfig(), 0.0)
    s.start(0.0, already_direct=False, public_addrs=False)
    assert isinstance(s.exchange_failed(0.1, "x", fresh=True, give_up=True, peer_unready=True), Finish)


def test_inputs_out_of_order_are_refused() -> None:
    s = InitiatorSchedule(PEER, PunchConfig(), 0.0)
    with pytest.raises(RuntimeError):
        s.punched(0.0, None)
    s.start(0.0, already_direct=False, public_addrs=False)
    with pytest.raises(RuntimeError):
        s.direct_done(0.0, None)
    finish(s.exchange_failed(0.1, "x", fresh=False, give_up=True))
    with pytest.raises(RuntimeError):
        s.exchanged(0.2, ready(0.2), fresh=False)


def test_config_window_and_validation() -> None:
    cfg = PunchConfig(round_window=3.0, fresh_round_window=0.3, window_rtts=3.0)
    assert cfg.window(False, 1.0) == 3.0
    assert cfg.window(True, None) == 0.3
    assert cfg.window(True, 0.5) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        PunchConfig(window_rtts=-1)


# -- responder ---------------------------------------------------------------


def lost(elapsed: float = 0.4) -> UpgradeFailed:
    return UpgradeFailed(PEER, "responder", elapsed, 1, "no direct connection in this round")


def test_responder_reports_the_last_lost_round_after_the_grace() -> None:
    r = ResponderRounds()
    assert r.round_started(PEER, 0.0) == 1
    due = r.round_lost(PEER, 1.0, lost())
    assert due == 1.0 + NEXT_ROUND_GRACE
    assert r.due(PEER, due - 0.01, direct=False) is None  # not yet
    ev = r.due(PEER, due, direct=False)
    assert ev is not None and ev.rounds == 1 and ev.reason == lost().reason
    assert r.due(PEER, due + 1, direct=False) is None  # reported once


def test_responder_stays_quiet_when_a_new_round_starts() -> None:
    r = ResponderRounds()
    r.round_started(PEER, 0.0)
    first = r.round_lost(PEER, 1.0, lost())
    assert r.round_started(PEER, 1.1) == 2
    assert r.due(PEER, first, direct=False) is None
    second = r.round_lost(PEER, 1.5, lost())
    assert r.due(PEER, first, direct=False) is None  # the earlier timer is stale
    ev = r.due(PEER, second, direct=False)
    assert ev is not None and ev.rounds == 2


def test_responder_stays_quiet_when_direct_or_won() -> None:
    r = ResponderRounds()
    r.round_started(PEER, 0.0)
    due = r.round_lost(PEER, 1.0, lost())
    assert r.due(PEER, due, direct=True) is None
    r.round_started(PEER, 2.0)
    r.round_won(PEER)
    assert r.due(PEER, 10.0, direct=False) is None
    assert r.round_started(PEER, 11.0) == 1  # a new upgrade counts from 1


def test_responder_bounds_the_peers_it_remembers() -> None:
    r = ResponderRounds(max_peers=2)
    for i in range(3):
        r.round_started(f"p{i}", 0.0)
    assert r.round_started("p0", 1.0) == 1  # p0 was forgotten for p2


def test_responder_table_stays_bounded_when_an_evicted_peer_loses_its_round() -> None:
    """A peer evicted mid-round comes back through round_lost; then a new
    round of its clears the timer, so ``due`` never drops it: that path
    must respect the cap too (it grew 32 -> 227 entries in 25,212 rounds)."""
    r = ResponderRounds(max_peers=4)
    t = 0.0
    for i in range(2_000):
        victim = f"v{i}"
        r.round_started(victim, t)
        for j in range(4):  # four newcomers evict the victim mid-round
            r.round_started(f"n{i}.{j}", t)
        r.round_lost(victim, t, lost())  # back in the table
        r.round_started(victim, t + 0.1)  # a new round: no failure is due for it
        assert r.due(victim, t + 10, direct=False) is None
        assert len(r) <= 4
        t += 1.0
