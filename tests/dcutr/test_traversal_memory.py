"""Traversal keeps DCUtR results for a bounded number of peers (issue 9)."""

from __future__ import annotations

from typing import Any, cast

from p2pshare.node.events import Upgraded, UpgradeFailed
from p2pshare.node.traversal import RESULTS_KEPT, Traversal


def _failed(n: int) -> UpgradeFailed:
    return UpgradeFailed(f"peer{n}", "responder", 0.5, 1, "no address of ours to announce")


def test_results_are_bounded_and_the_newest_kept() -> None:
    """A sharer answers DCUtR for every relayed receiver; the 15-minute soak's
    sharer held all 677 failures it ever saw. Now the newest RESULTS_KEPT."""
    t = Traversal(cast(Any, None), None)
    for n in range(RESULTS_KEPT * 3):
        t.on_dcutr(_failed(n))
    last = RESULTS_KEPT * 3 - 1
    assert len(t._failures) == RESULTS_KEPT
    assert f"peer{last}" in t._failures and "peer0" not in t._failures
    t.on_dcutr(Upgraded(f"peer{last}", "responder", "hole-punch", 0.2, 1, 1, 0.001, "/ip4/1.2.3.4/tcp/1"))
    assert f"peer{last}" not in t._failures and t.upgrade(f"peer{last}") is not None
    assert len(t._failures) == RESULTS_KEPT - 1
