"""When the receiver's short-code search looks again (pure, fake time)."""

from __future__ import annotations

import pytest

from p2pshare.node.discovery.lookup import RETRY_DELAYS
from p2pshare.node.shortcode.search import RoundEnd, next_round


def test_a_wrong_number_is_said_at_once() -> None:
    assert next_round(RoundEnd.NOT_FOUND, 1, now=0.0, deadline=60.0) is None


@pytest.mark.parametrize("end", [RoundEnd.UNREACHABLE, RoundEnd.LOOKUP_FAILED])
def test_an_unreachable_sharer_or_a_failed_lookup_is_tried_again_with_growing_pauses(end: RoundEnd) -> None:
    pauses = [next_round(end, n, now=0.0, deadline=60.0) for n in range(1, 8)]
    assert pauses[: len(RETRY_DELAYS)] == list(RETRY_DELAYS)
    assert all(p == RETRY_DELAYS[-1] for p in pauses[len(RETRY_DELAYS) :])  # capped, never zero


def test_no_pause_runs_past_the_deadline() -> None:
    assert next_round(RoundEnd.UNREACHABLE, 1, now=59.0, deadline=60.0) == 0.5
    assert next_round(RoundEnd.UNREACHABLE, 1, now=59.5, deadline=60.0) is None
    assert next_round(RoundEnd.UNREACHABLE, 4, now=56.5, deadline=60.0) is None  # 4 s would end past it
