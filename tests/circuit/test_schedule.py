"""The relay client's reservation schedule, with fake time: which relays to
hold, refresh, backoff and failover."""

from __future__ import annotations

import pytest

from p2pshare.node.circuit.schedule import (
    BACKOFF_MAX,
    FORGET_FOR,
    IDLE_RECHECK,
    MAX_CANDIDATES,
    MAX_EXPIRY,
    MAX_FAILURES,
    MIN_REFRESH,
    Plan,
    ReservationSchedule,
    accept_expiry,
    backoff,
)


def test_holds_the_first_want_relays_in_configured_order() -> None:
    s = ReservationSchedule(["A", "B", "C"], want=2)
    assert s.plan(0.0) == Plan(("A", "B"), IDLE_RECHECK)
    assert s.holding == {"A", "B"}
    assert s.plan(1.0) == Plan((), 1.0 + IDLE_RECHECK)  # nothing new while both hold


def test_want_is_at_least_one_and_duplicates_count_once() -> None:
    s = ReservationSchedule(["A", "A", "B"], want=0)
    assert s.want == 1
    assert s.relays == ("A", "B")
    assert s.plan(0.0).start == ("A",)


def test_no_relays_means_nothing_to_do() -> None:
    assert ReservationSchedule([], want=2).plan(5.0) == Plan((), 5.0 + IDLE_RECHECK)


def test_refresh_halfway_to_expiry() -> None:
    s = ReservationSchedule(["A"], want=1)
    s.plan(0.0)
    assert s.reserved("A", expire=10_003_600, wall_now=10_000_000.0) == 1800.0
    assert s.reserved("A", expire=10_000_000, wall_now=9_999_999.5) == MIN_REFRESH  # never a busy loop


def test_failover_to_the_next_relay_and_backoff_for_the_failed_one() -> None:
    s = ReservationSchedule(["A", "B", "C"], want=2)
    s.plan(0.0)
    assert s.failed("A", 10.0) == 1.0
    s.released("A")
    plan = s.plan(10.0)
    assert plan.start == ("C",)  # A backs off: C takes its slot
    assert plan.wake_at == 11.0  # when A's backoff ends


def test_a_failed_relay_is_retried_when_its_backoff_ends() -> None:
    s = ReservationSchedule(["A", "B"], want=2)
    s.plan(0.0)
    s.failed("A", 10.0)
    s.released("A")
    assert s.plan(10.0) == Plan((), 11.0)  # B still holds; A in 1 s
    assert s.plan(11.0).start == ("A",)


def test_backoff_doubles_up_to_the_cap_and_resets_on_success() -> None:
    s = ReservationSchedule(["A"], want=1)
    delays = []
    now = 0.0
    for _ in range(9):
        assert s.plan(now).start == ("A",)
        delays.append(s.failed("A", now))
        s.released("A")
        assert s.plan(now).start == ()
        now += delays[-1]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, BACKOFF_MAX, BACKOFF_MAX, BACKOFF_MAX]
    assert s.plan(now).start == ("A",)
    s.reserved("A", expire=100, wall_now=0.0)
    assert s.failed("A", now) == 1.0


def test_a_lost_reservation_frees_the_slot_for_the_next_relay() -> None:
    s = ReservationSchedule(["A", "B"], want=1)
    assert s.plan(0.0).start == ("A",)
    s.reserved("A", expire=3600, wall_now=0.0)
    assert s.plan(1.0).start == ()
    s.failed("A", 2.0)  # connection lost
    s.released("A")
    assert s.plan(2.0) == Plan(("B",), 3.0)


def test_cancelled_hold_without_failure_is_free_at_once() -> None:
    s = ReservationSchedule(["A"], want=1)
    s.plan(0.0)
    s.released("A")
    assert s.plan(0.0).start == ("A",)


@pytest.mark.parametrize(
    ("expire", "now", "accepted"),
    [(100, 99.9, 100), (100, 100.0, None), (100, 150.0, None), (10**12, 1000.0, 1000 + MAX_EXPIRY)],
)
def test_accept_expiry(expire: int, now: float, accepted: int | None) -> None:
    assert accept_expiry(expire, now) == accepted


def test_backoff_values() -> None:
    assert [backoff(n) for n in (0, 1, 2, 3, 7, 100)] == [1.0, 1.0, 2.0, 4.0, BACKOFF_MAX, BACKOFF_MAX]


# -- AutoRelay: candidates the node found by itself ---------------------------


def test_found_relays_are_held_with_none_configured() -> None:
    s = ReservationSchedule([], want=2)
    assert s.plan(0.0).start == ()
    assert s.offer("A", 0.0, rtt=0.2) and s.offer("B", 0.0, rtt=0.05) and s.offer("C", 0.0)
    assert s.plan(0.0).start == ("B", "A")  # lowest RTT first, unknown RTT last


def test_configured_relays_come_first_then_those_that_carry_data() -> None:
    s = ReservationSchedule(["CONF"], want=2)
    s.offer("LIMITED", 0.0, rtt=0.001)
    s.offer("COMMUNITY", 0.0, carries_data=True, rtt=0.3)
    assert s.candidates() == ["CONF", "COMMUNITY", "LIMITED"]
    assert s.plan(0.0).start == ("CONF", "COMMUNITY")


def test_a_better_relay_replaces_the_worst_once_reserved() -> None:
    s = ReservationSchedule([], want=2)
    s.offer("L1", 0.0)
    s.offer("L2", 0.0)
    assert s.plan(0.0).start == ("L1", "L2")
    s.reserved("L1", 1000, 0.0)
    assert s.offer("C", 1.0, carries_data=True)
    assert s.plan(1.0).start == ()  # no upgrade while a hold is still connecting
    s.reserved("L2", 1000, 0.0)
    p = s.plan(1.0)
    assert p.start == ("C",) and p.stop == ()  # one extra hold, nothing stopped yet
    assert s.plan(1.0).start == ()  # only one upgrade in flight
    s.reserved("C", 1000, 0.0)
    assert s.plan(2.0).stop == ("L2",)  # the worst (latest seen, same class) goes
    s.released("L2")
    assert s.plan(2.0) == Plan((), 2.0 + IDLE_RECHECK)


def test_no_upgrade_within_the_same_class() -> None:
    s = ReservationSchedule([], want=1)
    s.offer("L1", 0.0, rtt=0.5)
    s.plan(0.0)
    s.reserved("L1", 1000, 0.0)
    s.offer("L2", 0.0, rtt=0.01)
    assert s.plan(0.0).start == ()  # faster, but not worth churning a reservation for


def test_a_found_relay_that_keeps_failing_is_forgotten_for_a_while() -> None:
    s = ReservationSchedule(["CONF"], want=2)
    s.offer("X", 0.0)
    for i in range(MAX_FAILURES):
        s.plan(1000.0 * i)
        s.failed("X", 1000.0 * i)
        s.failed("CONF", 1000.0 * i)
        s.released("X")
        s.released("CONF")
    assert "X" not in s.candidates() and "CONF" in s.candidates()  # configured ones stay
    last = 1000.0 * (MAX_FAILURES - 1)
    assert not s.offer("X", last + 1.0)
    assert s.offer("X", last + FORGET_FOR)


def test_remembered_candidates_are_bounded() -> None:
    s = ReservationSchedule(["CONF"], want=2)
    for i in range(MAX_CANDIDATES * 3):
        s.offer(f"P{i}", 0.0, rtt=float(i))
    cands = s.candidates()
    assert len(cands) == MAX_CANDIDATES + 1 and cands[:3] == ["CONF", "P0", "P1"]


def test_a_code_stops_waiting_once_every_configured_relay_keeps_failing() -> None:
    """``share`` waits (bounded) for a reservation so its code names a relay;
    not for relays that failed twice in a row each (a wrong or dead
    ``--relay``: it waited 10 s). Once each is one failure: a relay that
    refused while starting up gets its retry."""
    s = ReservationSchedule(["A", "B"], want=1)
    assert not s.configured_all_failing()  # nothing tried yet
    s.plan(0.0)
    for t in (0.0, 1.0):
        s.failed("A", t)
        s.released("A")
    assert not s.configured_all_failing()  # B has not failed
    s.failed("B", 1.0)
    s.released("B")
    assert not s.configured_all_failing()  # B once: it gets its retry
    s.failed("B", 2.0)
    s.released("B")
    assert s.configured_all_failing()
    s.plan(4.0)
    s.reserved("A", expire=10_003_600, wall_now=10_000_000.0)  # A came back
    assert not s.configured_all_failing()


def test_found_relays_do_not_count_as_configured_ones_failing() -> None:
    s = ReservationSchedule([], want=1)
    s.offer("X", 0.0, carries_data=True)
    s.plan(0.0)
    s.failed("X", 0.0)
    s.failed("X", 1.0)
    assert not s.configured_all_failing()  # none configured: nothing to give up on


def test_a_configured_relay_is_worth_a_warning_when_it_starts_failing_only() -> None:
    s = ReservationSchedule(["r1"], want=1)
    s.offer("found", 0.0)
    s.failed("r1", 0.0)
    assert s.worth_a_warning("r1")  # it just stopped working: say so once
    s.failed("r1", 1.0)
    assert not s.worth_a_warning("r1")  # each retry after that only with -v
    s.reserved("r1", 10_000, 0.0)
    s.failed("r1", 2.0)
    assert s.worth_a_warning("r1")  # held, then lost: a new episode
    s.failed("found", 0.0)
    assert not s.worth_a_warning("found")  # found on the network: comes and goes
    assert not s.worth_a_warning("never-heard-of")
    assert s.configured("r1") and not s.configured("found") and not s.configured("never-heard-of")


def test_a_code_stops_waiting_for_relays_that_fail_or_stay_silent() -> None:
    from p2pshare.node.circuit.schedule import SILENT_GRACE, stop_waiting_for_relays

    assert stop_waiting_for_relays(waited=0.0, any_connected=False, all_failing=True)
    assert not stop_waiting_for_relays(waited=SILENT_GRACE - 0.1, any_connected=False, all_failing=False)
    assert stop_waiting_for_relays(waited=SILENT_GRACE, any_connected=False, all_failing=False)
    # A relay that answered is slow, not gone: wait for its reservation.
    assert not stop_waiting_for_relays(waited=9.0, any_connected=True, all_failing=False)
