"""The receiver's reach remembers the relay of a bounded number of sharers
(issue 9: a library ``Node`` may receive for months)."""

from __future__ import annotations

from typing import Any, cast

from p2pshare.node.reach import VIA_KEPT, Reacher


def test_relays_of_sharers_are_bounded_and_the_newest_still_avoided() -> None:
    """Each relayed connection recorded its sharer's relay for good, one
    entry per sharer ever fetched from. Now the newest VIA_KEPT; a limited
    circuit to a recent sharer still puts its relay on the avoid list."""
    reach = Reacher(cast(Any, None), cast(Any, None), cast(Any, None))
    for n in range(VIA_KEPT * 3):
        reach.note_via(f"sharer{n}", f"relay{n}")
    newest = VIA_KEPT * 3 - 1
    assert len(reach._via) == VIA_KEPT
    reach.note_limited("sharer0")  # forgotten: nothing to avoid
    assert reach.avoid == set()
    reach.note_limited(f"sharer{newest}")
    assert reach.avoid == {f"relay{newest}"}
    reach.note_via("sharer1", "relayX")  # met again: the newest, not evicted next
    reach.note_via("sharer-new", "relayY")
    assert "sharer1" in reach._via and len(reach._via) == VIA_KEPT
