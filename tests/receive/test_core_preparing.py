"""The receive core and a sharer still hashing (issue 12): a wait, not a failure."""

from __future__ import annotations

from p2pshare.node.receive.core import Emit, ReceiveSession, State, TransferTimedOut
from p2pshare.transfer.events import SharerPreparing
from tests.receive.test_core import connected_direct


def test_preparing_is_shown_and_is_no_failure() -> None:
    s = connected_direct(timeout=60, now=100.0)
    ev = SharerPreparing(10, 100)
    assert s.transfer_event(ev, 101.0) == [Emit(ev)]
    assert s.state is State.TRANSFERRING
    assert ev.percent == 10


def test_more_bytes_hashed_moves_the_deadline() -> None:
    """A 10 GiB share hashes for longer than the timeout: each report of
    more bytes hashed is progress, so the receiver keeps waiting."""
    s = connected_direct(timeout=60, now=100.0)
    assert s.deadline == 160.0
    s.transfer_event(SharerPreparing(1, 100), 150.0)
    assert s.deadline == 210.0
    s.transfer_event(SharerPreparing(2, 100), 200.0)
    assert s.deadline == 260.0


def test_the_same_figure_repeated_gives_no_more_time() -> None:
    """A sharer that says PREPARING forever without hashing more cannot hold a receiver."""
    s = connected_direct(timeout=60, now=100.0)
    s.transfer_event(SharerPreparing(5, 100), 150.0)
    s.transfer_event(SharerPreparing(5, 100), 200.0)
    s.transfer_event(SharerPreparing(4, 100), 205.0)
    assert s.deadline == 210.0
    assert s.handle(TransferTimedOut(), 210.0)[0].__class__.__name__ == "Fail"


def test_preparing_of_zero_counts_once() -> None:
    s = ReceiveSession(timeout=30)
    s.start(0.0)
    s.transfer_event(SharerPreparing(0, 0), 10.0)
    assert s.deadline == 40.0
    s.transfer_event(SharerPreparing(0, 0), 35.0)
    assert s.deadline == 40.0
    assert SharerPreparing(0, 0).percent == 0
