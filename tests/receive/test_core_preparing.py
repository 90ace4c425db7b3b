"""The receive core and a sharer still hashing (issue 12): a wait, not a failure."""

from __future__ import annotations

from p2pshare.node.receive.core import Emit, Fail, ReceiveSession, State, TransferTimedOut
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


def test_a_byte_more_of_a_huge_total_gives_no_more_time() -> None:
    """One more byte of a 2**63-byte total each second held ``get --timeout
    5`` for ever (a hostile-peer review): no share is that large; and of a
    real 1 TiB total, only another GiB (less than 1%) earns time."""
    s = connected_direct(timeout=5, now=100.0)
    for i in range(1, 10):
        s.transfer_event(SharerPreparing(i, 1 << 63), 100.0 + i / 10)
    assert s.deadline == 105.0
    tib = 1 << 40
    s.transfer_event(SharerPreparing(1, tib), 101.0)
    assert s.deadline == 106.0  # the first word of a possible share counts once
    for i in range(2, 10):
        s.transfer_event(SharerPreparing(i, tib), 101.0 + i / 10)
    assert s.deadline == 106.0
    s.transfer_event(SharerPreparing(1 + (1 << 30), tib), 105.0)
    assert s.deadline == 110.0  # a GiB hashed: real progress


def test_an_honest_large_share_hashed_slowly_is_waited_for() -> None:
    """500 GB hashed from a USB disk at 80 MB/s: 1% (5 GB) takes ~62 s, more
    than the default 60 s; each GiB (13 s) earns time (a review found the
    whole-percent rule gave up on it)."""
    s = connected_direct(timeout=60, now=0.0)
    total, rate = 500 * 10**9, 80 * 10**6
    t = 0.0
    while t < 6000:
        t += 5.0
        s.transfer_event(SharerPreparing(int(t * rate), total), t)
        assert s.deadline > t, t


def test_a_changed_total_gives_no_more_time_and_the_wait_is_bounded() -> None:
    """Each new total would start the percents again: only the first counts,
    so a sharer extends the wait at most 101 times (0% to 100%)."""
    s = connected_direct(timeout=10, now=0.0)
    s.transfer_event(SharerPreparing(0, 0), 1.0)  # listing: counts once
    assert s.deadline == 11.0
    s.transfer_event(SharerPreparing(0, 1000), 2.0)  # the total is known: still 0%
    assert s.deadline == 11.0
    s.transfer_event(SharerPreparing(999, 10**9), 3.0)  # another total: nothing
    assert s.deadline == 11.0
    extended = 0
    for done in range(0, 2001):
        before = s.deadline
        s.transfer_event(SharerPreparing(done, 1000), 10.0 + done)
        extended += s.deadline > before
    assert extended == 100  # 1% .. 100%, then never again


def test_running_out_of_time_while_preparing_says_so() -> None:
    s = connected_direct(timeout=5, now=0.0)
    s.transfer_event(SharerPreparing(37, 100), 1.0)
    [fail] = s.handle(TransferTimedOut(), 6.0)
    assert isinstance(fail, Fail)
    assert str(fail.error).startswith("the sharer is still preparing (37% hashed) and hashed no further 1% (or 1 GiB)")


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
