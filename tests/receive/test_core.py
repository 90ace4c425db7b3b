"""The receive session core, walked through every transition with fake time.

No trio, no network: the tests play the driver, feeding outcomes and a
``now`` they choose, and check the actions the core asks for.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from p2pshare.node.circuit.wire import Limit
from p2pshare.node.errors import PeerUnreachableError, RelayLimitedError
from p2pshare.node.events import Connected, ConnectionPath, PathUpgraded
from p2pshare.node.receive.core import (
    MAX_ATTEMPTS,
    PROBE_WAIT,
    RETRY_DELAY,
    UPGRADE_WAIT,
    UPGRADE_WAIT_LIMITED,
    Action,
    Emit,
    Fail,
    Finish,
    Probe,
    Reach,
    Reached,
    ReachFailed,
    ReceiveResult,
    ReceiveSession,
    Sleep,
    State,
    StreamOpenFailed,
    TimerFired,
    Transfer,
    TransferDone,
    TransferFailed,
    TransferMoved,
    TransferTimedOut,
    UpgradeWaitEnded,
    WaitUpgrade,
    limit_text,
    probe_targets,
)
from p2pshare.transfer.errors import (
    AuthenticationError,
    BusyError,
    FilesUnavailableError,
    StreamEndedError,
    UnavailableFile,
    UnavailableReason,
)
from p2pshare.transfer.events import FilesCompleted, FileUnavailable, Progress

PEER = "12D3KooWPeer"
DIRECT = ConnectionPath.DIRECT
RELAYED = ConnectionPath.RELAYED
PUNCHED = ConnectionPath.HOLE_PUNCHED
LIMIT = Limit(duration=120, data=131072)
RESULT: Any = SimpleNamespace(unavailable=())  # stands for a FetchResult: the core passes a whole one on


def op(actions: list[Action]) -> Action:
    """The one operation (or end) among the actions; events are checked apart."""
    rest = [a for a in actions if not isinstance(a, Emit)]
    assert len(rest) == 1, actions
    return rest[0]


def events(actions: list[Action]) -> list[object]:
    return [a.event for a in actions if isinstance(a, Emit)]


def reached(path: ConnectionPath = DIRECT, limit: Limit | None = None, rtt: float | None = 1.5) -> Reached:
    return Reached(PEER, path, rtt, limit)


def connected_direct(timeout: float = 60.0, now: float = 100.0) -> ReceiveSession:
    s = ReceiveSession(timeout=timeout)
    s.start(now)
    s.handle(reached(), now)
    assert s.state is State.TRANSFERRING
    return s


# -- start and probing -------------------------------------------------------


def test_start_without_probe_reaches_at_once() -> None:
    s = ReceiveSession(timeout=60)
    assert s.start(100.0) == [Reach(160.0, None)]
    assert s.state is State.REACHING


def test_start_probes_the_codes_relays_beside_the_dial() -> None:
    """The probe is background work: the dial starts at once beside it
    (a DCUtR round that comes first waits for the probe)."""
    s = ReceiveSession(timeout=60, probe=("/ip4/1.2.3.4/tcp/4001/p2p/R",))
    assert s.start(100.0) == [Probe(("/ip4/1.2.3.4/tcp/4001/p2p/R",), PROBE_WAIT), Reach(160.0, None)]
    assert s.state is State.REACHING


def test_start_learns_the_mapping_from_other_peers_when_the_code_names_no_relay() -> None:
    """Issue 10: a sharer found through the DHT on relays it chose itself; the
    code names none. Without a mapping our DCUtR CONNECT carried only a LAN
    address and every round was refused: learn it (bootstrap peers) first."""
    s = ReceiveSession(timeout=60, learn_mapping=True)
    assert s.start(100.0) == [Probe((), PROBE_WAIT), Reach(160.0, None)]


def test_probe_wait_is_bounded_by_the_deadline() -> None:
    s = ReceiveSession(timeout=1.0, probe=("/ip4/1.2.3.4/tcp/4001/p2p/R",))
    assert s.start(0.0) == [Probe(("/ip4/1.2.3.4/tcp/4001/p2p/R",), 1.0), Reach(1.0, None)]


def test_probe_targets() -> None:
    addrs = [
        "/ip4/5.6.7.8/tcp/1/p2p/S",
        "/ip4/1.2.3.4/tcp/4001/p2p/R/p2p-circuit/p2p/S",
        "/ip4/1.2.3.4/tcp/4001/p2p/R/p2p-circuit/p2p/S",
        "/ip4/9.9.9.9/tcp/4001/p2p/Q/p2p-circuit/p2p/S",
    ]
    assert probe_targets(addrs, nat_known=False) == ("/ip4/1.2.3.4/tcp/4001/p2p/R", "/ip4/9.9.9.9/tcp/4001/p2p/Q")
    assert probe_targets(addrs, nat_known=True) == ()
    assert probe_targets(["/ip4/5.6.7.8/tcp/1/p2p/S"], nat_known=False) == ()


def test_reach_failure_ends_the_session_with_the_dialers_error() -> None:
    s = ReceiveSession(timeout=60)
    s.start(0.0)
    err = PeerUnreachableError("could not reach the sharer")
    assert s.handle(ReachFailed(err), 60.0) == [Fail(err)]
    assert s.state is State.FAILED


# -- connected: direct, hole punched, relayed --------------------------------


def test_direct_connection_transfers_and_finishes() -> None:
    s = ReceiveSession(timeout=60)
    s.start(0.0)
    actions = s.handle(reached(DIRECT), 1.0)
    assert events(actions) == [Connected(PEER, DIRECT, 1.5)]
    assert op(actions) == Transfer(PEER, DIRECT, watch_upgrade=False, deadline=60.0)
    assert s.handle(TransferDone(RESULT), 5.0) == [Finish(ReceiveResult(PEER, DIRECT, 1, RESULT))]
    assert s.state is State.DONE


def test_hole_punched_connection_does_not_wait_or_watch() -> None:
    s = ReceiveSession(timeout=60)
    s.start(0.0)
    actions = s.handle(reached(PUNCHED, rtt=None), 1.0)
    assert events(actions) == [Connected(PEER, PUNCHED, None)]
    assert op(actions) == Transfer(PEER, PUNCHED, watch_upgrade=False, deadline=60.0)


@pytest.mark.parametrize(("limit", "wait"), [(None, UPGRADE_WAIT), (LIMIT, UPGRADE_WAIT_LIMITED)])
def test_relayed_connection_waits_for_hole_punching(limit: Limit | None, wait: float) -> None:
    s = ReceiveSession(timeout=60)
    s.start(0.0)
    actions = s.handle(reached(RELAYED, limit), 1.0)
    assert events(actions) == [Connected(PEER, RELAYED, 1.5)]
    assert op(actions) == WaitUpgrade(PEER, wait)
    assert s.state is State.WAITING_UPGRADE


@pytest.mark.parametrize("limit", [None, LIMIT])
def test_stay_relayed_transfers_over_the_relay_without_waiting_or_watching(limit: Limit | None) -> None:
    """``get --force-relay`` tests a relay: the bytes cross it even when a hole
    punch would open a direct path (on loopback one opens in ~40 ms)."""
    s = ReceiveSession(timeout=60, stay_relayed=True)
    s.start(0.0)
    actions = s.handle(reached(RELAYED, limit), 1.0)
    assert events(actions) == [Connected(PEER, RELAYED, 1.5)]
    assert op(actions) == Transfer(PEER, RELAYED, watch_upgrade=False, deadline=60.0)
    assert s.state is State.TRANSFERRING


def test_upgrade_wait_is_bounded_by_the_deadline() -> None:
    s = ReceiveSession(timeout=10)
    s.start(0.0)
    assert op(s.handle(reached(RELAYED, LIMIT), 8.0)) == WaitUpgrade(PEER, 2.0)
    s = ReceiveSession(timeout=10)
    s.start(0.0)
    assert op(s.handle(reached(RELAYED), 11.0)) == WaitUpgrade(PEER, 0.0)


def test_no_upgrade_in_time_transfers_relayed_and_watches() -> None:
    s = ReceiveSession(timeout=60)
    s.start(0.0)
    s.handle(reached(RELAYED), 1.0)
    actions = s.handle(UpgradeWaitEnded(None, 4.0), 5.0)
    assert actions == [Transfer(PEER, RELAYED, watch_upgrade=True, deadline=60.0)]
    assert s.state is State.TRANSFERRING


def test_upgrade_before_the_transfer_moves_it_to_the_direct_path() -> None:
    s = ReceiveSession(timeout=60)
    s.start(0.0)
    s.handle(reached(RELAYED, LIMIT), 1.0)
    actions = s.handle(UpgradeWaitEnded(PUNCHED, 1.23456), 2.3)
    assert events(actions) == [PathUpgraded(PEER, PUNCHED, 1.235)]
    assert op(actions) == Transfer(PEER, PUNCHED, watch_upgrade=False, deadline=60.0)
    assert s.handle(TransferDone(RESULT), 9.0) == [Finish(ReceiveResult(PEER, PUNCHED, 1, RESULT))]


# -- a relayed transfer that gets upgraded midway ----------------------------


@pytest.mark.parametrize(("found", "reported"), [(PUNCHED, PUNCHED), (DIRECT, DIRECT), (None, DIRECT)])
def test_upgrade_during_the_transfer_switches_path(found: ConnectionPath | None, reported: ConnectionPath) -> None:
    s = ReceiveSession(timeout=60)
    s.start(0.0)
    s.handle(reached(RELAYED), 1.0)
    s.handle(UpgradeWaitEnded(None, 4.0), 5.0)
    actions = s.handle(TransferMoved(found, 7.0004), 12.0)
    assert events(actions) == [PathUpgraded(PEER, reported, 7.0)]
    assert op(actions) == Reach(60.0, None)
    assert s.state is State.SWITCHING_PATH
    actions = s.handle(reached(PUNCHED), 12.1)
    assert events(actions) == [Connected(PEER, PUNCHED, 1.5)]
    assert op(actions) == Transfer(PEER, PUNCHED, watch_upgrade=False, deadline=60.0)
    assert s.handle(TransferDone(RESULT), 20.0) == [Finish(ReceiveResult(PEER, PUNCHED, 2, RESULT))]


def test_switching_after_progress_extends_the_deadline() -> None:
    s = ReceiveSession(timeout=60)
    s.start(0.0)
    s.handle(reached(RELAYED), 1.0)
    s.handle(UpgradeWaitEnded(None, 4.0), 5.0)
    s.transfer_event(Progress(10, 100))
    assert op(s.handle(TransferMoved(PUNCHED, 80.0), 85.0)) == Reach(145.0, None)


def test_switching_path_can_fail_to_reach() -> None:
    s = ReceiveSession(timeout=60)
    s.start(0.0)
    s.handle(reached(RELAYED), 1.0)
    s.handle(UpgradeWaitEnded(None, 4.0), 5.0)
    s.handle(TransferMoved(PUNCHED, 1.0), 6.0)
    err = PeerUnreachableError("gone")
    assert s.handle(ReachFailed(err), 60.0) == [Fail(err)]


# -- failures ----------------------------------------------------------------


def test_transfer_events_are_passed_on() -> None:
    s = connected_direct()
    assert s.transfer_event(FilesCompleted(("a.txt",))) == [Emit(FilesCompleted(("a.txt",)))]
    assert s.transfer_event(Progress(1, 2)) == [Emit(Progress(1, 2))]


def test_a_final_failure_ends_the_session_with_its_error() -> None:
    s = connected_direct()
    err = AuthenticationError("the sharer could not prove it holds the key")
    assert s.handle(TransferFailed(err, retryable=False, upgraded=False), 101.0) == [Fail(err)]
    assert s.state is State.FAILED


def test_a_retryable_failure_backs_off_then_reaches_again() -> None:
    s = connected_direct(now=100.0)
    err = StreamEndedError("stream ended")
    assert s.handle(TransferFailed(err, retryable=True, upgraded=False), 101.0) == [Sleep(101.0 + RETRY_DELAY)]
    assert s.state is State.BACKING_OFF
    assert s.handle(TimerFired(), 101.2) == [Reach(160.0, err)]
    assert s.state is State.REACHING
    s.handle(reached(), 101.3)
    assert s.handle(TransferDone(RESULT), 102.0) == [Finish(ReceiveResult(PEER, DIRECT, 2, RESULT))]


def test_a_stream_that_cannot_be_opened_is_retried() -> None:
    s = connected_direct(now=100.0)
    err = ConnectionError("connection closed")
    assert s.handle(StreamOpenFailed(err), 100.5) == [Sleep(100.5 + RETRY_DELAY)]
    assert s.handle(TimerFired(), 100.7) == [Reach(160.0, err)]


def test_progress_restarts_the_deadline() -> None:
    s = connected_direct(now=100.0)
    s.transfer_event(Progress(50, 100))
    err = StreamEndedError("reset")
    s.handle(TransferFailed(err, retryable=True, upgraded=False), 150.0)
    assert s.handle(TimerFired(), 150.2) == [Reach(210.0, err)]
    # The next attempt makes no progress: the deadline stays.
    s.handle(reached(), 150.3)
    s.handle(TransferFailed(err, retryable=True, upgraded=False), 151.0)
    assert s.handle(TimerFired(), 151.2) == [Reach(210.0, err)]


def test_limited_relay_cut_without_upgrade_seeks_a_data_relay_once() -> None:
    """Cut by a limited relay with no direct path: reach the sharer again
    through a relay that carries data; only limited ones again: one line."""
    s = ReceiveSession(timeout=60)
    s.start(0.0)
    s.handle(reached(RELAYED, LIMIT), 1.0)
    s.handle(UpgradeWaitEnded(None, 15.0), 16.0)
    s.transfer_event(Progress(131072, 10**9))
    (reach,) = s.handle(TransferFailed(StreamEndedError("reset"), retryable=True, upgraded=False), 30.0)
    assert isinstance(reach, Reach) and reach.avoid_limited and reach.deadline == 90.0  # progress moved it
    assert isinstance(reach.last_error, RelayLimitedError) and "128 KiB / 2 min" in str(reach.last_error)
    *_, fail = s.handle(reached(RELAYED, LIMIT), 31.0)
    assert isinstance(fail, Fail) and isinstance(fail.error, RelayLimitedError)
    text = str(fail.error)
    assert text.startswith("no relay that carries data reaches the sharer") and "\n" not in text
    assert "data received so far is kept" in text


def cut_by_a_limited_relay() -> ReceiveSession:
    s = ReceiveSession(timeout=60)
    s.start(0.0)
    s.handle(reached(RELAYED, LIMIT), 1.0)
    s.handle(UpgradeWaitEnded(None, 15.0), 16.0)
    s.handle(TransferFailed(StreamEndedError("reset"), retryable=True, upgraded=False), 30.0)
    return s


def test_a_data_relay_found_after_a_limited_cut_carries_the_transfer() -> None:
    s = cut_by_a_limited_relay()
    actions = s.handle(reached(RELAYED, None), 32.0)
    assert op(actions) == WaitUpgrade(PEER, UPGRADE_WAIT)
    assert op(s.handle(UpgradeWaitEnded(None, UPGRADE_WAIT), 36.0)) == Transfer(
        PEER, RELAYED, watch_upgrade=True, deadline=60.0
    )


def test_no_data_relay_at_all_is_said_in_one_line() -> None:
    s = cut_by_a_limited_relay()
    (fail,) = s.handle(ReachFailed(PeerUnreachableError("could not reach the sharer: no answer")), 60.0)
    assert isinstance(fail, Fail) and str(fail.error).startswith("no relay that carries data reaches the sharer")


def test_limit_text_reads_js_milliseconds() -> None:
    assert limit_text(Limit(duration=120000, data=131072)) == "128 KiB / 2 min"
    assert limit_text(Limit(duration=90, data=None)) == "90 s"
    assert limit_text(Limit(duration=None, data=8 << 20)) == "8 MiB"


def test_limited_relay_cut_with_an_upgrade_retries_on_the_direct_path() -> None:
    s = ReceiveSession(timeout=60)
    s.start(0.0)
    s.handle(reached(RELAYED, LIMIT), 1.0)
    s.handle(UpgradeWaitEnded(None, 15.0), 16.0)
    err = StreamEndedError("reset")
    assert s.handle(TransferFailed(err, retryable=True, upgraded=True), 30.0) == [Sleep(30.0 + RETRY_DELAY)]


def test_a_limit_no_longer_applies_once_the_path_is_direct() -> None:
    s = ReceiveSession(timeout=60)
    s.start(0.0)
    s.handle(reached(RELAYED, LIMIT), 1.0)
    s.handle(UpgradeWaitEnded(PUNCHED, 2.0), 3.0)
    err = StreamEndedError("reset")
    assert s.handle(TransferFailed(err, retryable=True, upgraded=False), 4.0) == [Sleep(4.0 + RETRY_DELAY)]


# -- the deadline holds for every retry (issue 9, finding 2) ------------------


def test_busy_forever_on_an_open_connection_ends_at_the_deadline() -> None:
    """Re-reaching a connected peer succeeds at once, so before the fix a sharer
    answering BUSY kept the receiver going forever; now it ends on time."""
    timeout = 10.0
    s = ReceiveSession(timeout=timeout)
    now = 0.0
    actions = s.start(now)
    rounds = 0
    while True:
        step = op(actions)
        if isinstance(step, Fail):
            break
        now += 0.01  # every step takes a little time
        if isinstance(step, Reach):
            actions = s.handle(reached(), now)
        elif isinstance(step, Transfer):
            rounds += 1
            actions = s.handle(TransferFailed(BusyError("busy"), retryable=True, upgraded=False), now)
        elif isinstance(step, Sleep):
            now = step.until
            actions = s.handle(TimerFired(), now)
        else:  # pragma: no cover
            raise AssertionError(step)
    assert isinstance(step.error, PeerUnreachableError)
    assert "no progress for 10 s" in str(step.error) and "busy" in str(step.error)
    assert now <= timeout
    assert 20 < rounds < 60


def test_a_failure_right_before_the_deadline_does_not_sleep_past_it() -> None:
    s = connected_direct(timeout=60, now=0.0)
    [fail] = s.handle(StreamOpenFailed(ConnectionError("closed")), 59.9)
    assert isinstance(fail, Fail) and isinstance(fail.error, PeerUnreachableError)
    assert "closed" in str(fail.error)


def test_a_timer_that_fires_late_does_not_reach_past_the_deadline() -> None:
    s = connected_direct(timeout=60, now=0.0)
    s.handle(TransferFailed(BusyError("busy"), retryable=True, upgraded=False), 10.0)
    [fail] = s.handle(TimerFired(), 61.0)
    assert isinstance(fail, Fail) and isinstance(fail.error, PeerUnreachableError)


def test_reconnects_are_bounded_even_with_progress() -> None:
    s = connected_direct(now=0.0)
    now = 0.0
    for _ in range(MAX_ATTEMPTS - 1):
        s.transfer_event(Progress(1, 2))
        now += 1.0
        s.handle(TransferFailed(StreamEndedError("reset"), retryable=True, upgraded=False), now)
        now += RETRY_DELAY
        s.handle(TimerFired(), now)
        s.handle(reached(), now)
    s.transfer_event(Progress(1, 2))
    s.handle(TransferFailed(StreamEndedError("reset"), retryable=True, upgraded=False), now + 1)
    [fail] = s.handle(TimerFired(), now + 2)
    assert isinstance(fail, Fail) and "too many reconnects" in str(fail.error)
    assert s.attempts == MAX_ATTEMPTS


# -- inputs out of place -----------------------------------------------------


@pytest.mark.parametrize(
    "outcome",
    [UpgradeWaitEnded(None, 1.0), TransferDone(RESULT), TimerFired(), StreamOpenFailed(OSError())],
)
def test_an_input_out_of_place_is_a_bug(outcome: Any) -> None:
    s = ReceiveSession(timeout=60)
    s.start(0.0)  # reaching
    with pytest.raises(RuntimeError, match="unexpected"):
        s.handle(outcome, 1.0)


def test_nothing_is_accepted_after_the_end() -> None:
    s = connected_direct()
    s.handle(TransferDone(RESULT), 101.0)
    with pytest.raises(RuntimeError, match="ended"):
        s.handle(TimerFired(), 102.0)


def test_the_result_names_the_path_and_attempts() -> None:
    s = connected_direct()
    [finish] = s.handle(TransferDone(RESULT), 101.0)
    assert isinstance(finish, Finish)
    assert (finish.result.peer_id, finish.result.path, finish.result.attempts) == (PEER, DIRECT, 1)
    assert finish.result.transfer is RESULT


# -- the deadline holds during a transfer (issue 9, finding 2) ------------------


def test_progress_moves_the_transfer_deadline() -> None:
    s = connected_direct(timeout=10.0, now=100.0)
    assert s.deadline == 110.0
    s.transfer_event(FilesCompleted(("a",)), 105.0)  # not progress
    assert s.deadline == 110.0
    s.transfer_event(Progress(1, 2), 107.0)
    assert s.deadline == 117.0
    s.transfer_event(Progress(2, 3), 103.0)  # a late report never pulls it back
    assert s.deadline == 117.0


def test_a_transfer_that_outlives_its_deadline_fails_with_the_reason() -> None:
    s = connected_direct(timeout=10.0, now=100.0)
    (fail,) = s.handle(TransferTimedOut(), 110.0)
    assert isinstance(fail, Fail) and isinstance(fail.error, PeerUnreachableError)
    assert "no progress for 10 s" in str(fail.error) and "no verified data arrived for 10 s" in str(fail.error)
    assert s.state is State.FAILED


def test_a_limited_relay_that_runs_out_the_clock_says_so() -> None:
    s = ReceiveSession(timeout=8.0)
    s.start(0.0)
    s.handle(reached(RELAYED, LIMIT), 0.1)
    assert op(s.handle(UpgradeWaitEnded(None, 7.9), 8.0)) == Transfer(PEER, RELAYED, watch_upgrade=True, deadline=8.0)
    (reach,) = s.handle(TransferTimedOut(), 8.0)
    assert isinstance(reach, Reach) and reach.avoid_limited
    assert "limits each relayed connection" in str(reach.last_error)


# -- files the sharer stopped serving (issue 9, "changed source") ---------------

CHANGED_A = UnavailableFile("share/a.bin", UnavailableReason.CHANGED)


def partial(*unavailable: UnavailableFile, files: int = 4) -> Any:
    """A FetchResult of a transfer that ended without ``unavailable``."""
    return SimpleNamespace(files=files, output_dir=Path("DIR"), unavailable=unavailable)


def test_files_the_sharer_stopped_serving_fail_at_once_naming_them() -> None:
    s = connected_direct()
    assert s.transfer_event(FileUnavailable("share/a.bin", UnavailableReason.CHANGED), 100.5) == [
        Emit(FileUnavailable("share/a.bin", UnavailableReason.CHANGED))
    ]
    (fail,) = s.handle(TransferDone(partial(CHANGED_A)), 101.0)
    assert isinstance(fail, Fail) and isinstance(fail.error, FilesUnavailableError)
    assert str(fail.error) == (
        "3 of 4 files received into DIR; not received: share/a.bin (changed on the sharer's side after it was shared)"
    )
    assert not fail.error.retryable  # the sharer would say the same at once
    assert s.state is State.FAILED
    with pytest.raises(RuntimeError, match="ended"):
        s.handle(TimerFired(), 102.0)


def test_after_a_retry_the_unavailable_files_still_end_the_session() -> None:
    """A dropped stream is retried; the attempt that finishes without the file fails, once."""
    s = connected_direct(now=100.0)
    s.handle(TransferFailed(StreamEndedError("cut"), retryable=True, upgraded=False), 101.0)
    s.handle(TimerFired(), 101.2)
    s.handle(reached(), 101.3)
    (fail,) = s.handle(TransferDone(partial(CHANGED_A)), 101.5)
    assert isinstance(fail, Fail) and isinstance(fail.error, FilesUnavailableError)
    assert s.attempts == 2


def test_unavailable_files_error_names_a_few_and_counts_the_rest() -> None:
    many = [UnavailableFile(f"d/f{i}", UnavailableReason.REMOVED) for i in range(5)]
    err = FilesUnavailableError(files=5, output_dir="out", unavailable=many)
    assert str(err).startswith("0 of 5 files received into out; not received: d/f0 (removed on the sharer's side")
    assert str(err).endswith("d/f2 (removed on the sharer's side after it was shared) and 2 more")
    assert err.details() == {
        "files": 5,
        "files_received": 0,
        "output": "out",
        "not_received": [{"path": f"d/f{i}", "reason": "removed"} for i in range(5)],
    }
    one = FilesUnavailableError(
        files=1, output_dir="o", unavailable=[UnavailableFile("x\x1b[2Jy", UnavailableReason.UNREADABLE)]
    )
    assert str(one) == "0 of 1 file received into o; not received: x?[2Jy (no longer readable on the sharer's side)"
