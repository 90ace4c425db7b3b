"""``node.stop_signals``: every stop signal is counted as it comes, and one
left unread when the block ends is spent, not raised (in-process, real
signals)."""

from __future__ import annotations

import os
import signal

import pytest
import trio

from p2pshare.node.stop_signals import stop_signals


async def test_signals_are_counted_and_waited_for() -> None:
    with stop_signals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        with trio.fail_after(5):
            await signals.received(1)
        assert signals.count == 1
        os.kill(os.getpid(), signal.SIGTERM)
        with trio.fail_after(5):
            await signals.received(2)
        assert signals.count == 2
        with trio.move_on_after(0.05) as waited:
            await signals.received(3)  # no third signal
        assert waited.cancelled_caught
        await signals.received(2)  # already there: returns at once


async def test_two_signals_at_once_count_twice() -> None:
    with stop_signals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        with trio.fail_after(5):
            await signals.received(2)


@pytest.mark.parametrize("checkpoints", [0, 1, 2, 3])
def test_a_signal_as_the_block_ends_is_counted_not_raised(checkpoints: int) -> None:
    """The first version read trio's signal receiver from a system task: a
    signal that woke it one or two checkpoints before the block ended
    crashed the run (TrioInternalError, ~1 run in 2); zero checkpoints
    raised KeyboardInterrupt. Found by review."""

    async def main() -> int:
        with stop_signals() as signals:
            await trio.sleep(0.001)
            signal.raise_signal(signal.SIGINT)
            for _ in range(checkpoints):
                await trio.lowlevel.checkpoint()
        await trio.sleep(0.01)
        return signals.count

    for _ in range(30):
        assert trio.run(main) == 1


async def test_a_signal_nobody_waits_for_is_not_raised_when_the_block_ends() -> None:
    """Before, an unread SIGINT came back as KeyboardInterrupt at the end."""
    with stop_signals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        await signals.received(1)
        os.kill(os.getpid(), signal.SIGINT)  # the second: nobody waits for it
        await trio.sleep(0.05)
    assert signals.count == 2
    await trio.sleep(0.05)  # no KeyboardInterrupt here either
