"""``_trio_rounds``: the per-peer round count behind ``DCUtR.busy`` and the
wait for it to change (``DCUtR.wait_idle``, which ``Traversal.wait_direct``
awaits instead of re-checking every 50 ms)."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
import trio
import trio.testing

from p2pshare.node.dcutr._trio_rounds import Changes, Rounds


def test_a_peer_is_busy_until_its_last_round_ends() -> None:
    rounds = Rounds()
    with rounds.running("A"):
        with rounds.running("A"), rounds.running("B"):
            assert "A" in rounds and "B" in rounds and len(rounds) == 2
        assert "A" in rounds and "B" not in rounds
    assert "A" not in rounds and len(rounds) == 0


def test_a_round_that_raises_still_ends() -> None:
    rounds = Rounds()
    with pytest.raises(ValueError), rounds.running("A"):
        raise ValueError
    assert "A" not in rounds


async def test_until_returns_at_once_when_done() -> None:
    with trio.fail_after(1):
        await Changes().until(lambda: True)


async def test_until_wakes_when_the_last_round_ends_and_not_before() -> None:
    changes = Changes()
    active, answering = Rounds(changes), Rounds(changes)  # several sets, one wait
    done = trio.Event()

    async def waiter() -> None:
        await changes.until(lambda: "A" not in active and "A" not in answering)
        done.set()

    with ExitStack() as initiator, ExitStack() as responder:
        initiator.enter_context(active.running("A"))
        responder.enter_context(answering.running("A"))
        with trio.fail_after(1):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiter)
                await trio.testing.wait_all_tasks_blocked()
                with answering.running("B"):  # a change that does not end the wait
                    pass
                responder.close()
                await trio.testing.wait_all_tasks_blocked()
                assert not done.is_set()  # still active
                initiator.close()
                await done.wait()
