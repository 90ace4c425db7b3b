"""How many send buffers one receiver may hold (``ShareRegistry.batches_per_session``)."""

from __future__ import annotations

import pytest

from p2pshare.transfer.registry import MAX_BATCHES, ShareRegistry

MiB = 1 << 20


@pytest.mark.parametrize(
    ("sessions", "expected"),
    [(0, MAX_BATCHES), (1, MAX_BATCHES), (3, MAX_BATCHES), (4, 3), (6, 2), (12, 1), (64, 1)],
)
def test_receivers_share_the_batch_memory_and_each_keeps_one(sessions: int, expected: int) -> None:
    registry = ShareRegistry(batch_memory=48 * MiB)
    registry.active_sessions = sessions
    assert registry.batches_per_session(4 * MiB) == expected


def test_small_batches_give_more_of_them_up_to_the_pipeline_depth() -> None:
    registry = ShareRegistry(batch_memory=48 * MiB)
    registry.active_sessions = 40
    assert registry.batches_per_session(256 * 1024) == MAX_BATCHES  # 48 MiB / 40 / 256 KiB = 4.8
    assert registry.batches_per_session(0) == MAX_BATCHES  # a degenerate capacity is no division by zero
