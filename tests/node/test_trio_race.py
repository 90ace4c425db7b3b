"""``_trio_race.until``: the subscribe-then-recheck wait behind the DCUtR
event waits (``wait_direct``, ``wait_addrs``, ``Changes.until``).

It returns at once when ``done()`` already holds (without awaiting an
event), otherwise on the first event after which it holds, and never
outlives the caller's cancel scope.
"""

from __future__ import annotations

import trio
import trio.testing

from p2pshare.node._trio_race import until


async def test_until_returns_at_once_when_done_already_holds() -> None:
    woken = 0

    async def next_event() -> None:
        nonlocal woken
        woken += 1
        await trio.sleep_forever()

    with trio.fail_after(1):
        await until(next_event, lambda: True)
    assert woken == 0  # looked before it waited


async def test_until_returns_after_the_event_that_makes_it_hold() -> None:
    send, recv = trio.open_memory_channel[int](8)
    state = {"n": 0}
    done = trio.Event()

    async def waiter() -> None:
        await until(recv.receive, lambda: state["n"] >= 2)
        done.set()

    with trio.fail_after(1):  # a poll (never blocked) would keep wait_all_tasks_blocked waiting
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            state["n"] = 1
            send.send_nowait(1)  # an event after which it does not hold yet
            await trio.testing.wait_all_tasks_blocked()
            assert not done.is_set()
            state["n"] = 2  # holds now, but nothing told it: it still sleeps
            await trio.testing.wait_all_tasks_blocked()
            assert not done.is_set()
            send.send_nowait(2)
            await done.wait()
    assert recv.statistics().current_buffer_used == 0  # woke on each event, took no more


async def test_until_is_bounded_by_the_callers_scope() -> None:
    send, recv = trio.open_memory_channel[int](8)
    with send, trio.move_on_after(0.05) as scope:
        await until(recv.receive, lambda: False)
    assert scope.cancelled_caught
