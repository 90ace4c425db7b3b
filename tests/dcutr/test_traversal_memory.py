"""Traversal keeps DCUtR results, and the relays it probed, for a bounded
number of peers (issue 9)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from p2pshare.node.events import Upgraded, UpgradeFailed
from p2pshare.node.natinfo import Mapping, NatReport
from p2pshare.node.traversal import PROBED_KEPT, RESULTS_KEPT, Traversal


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


async def test_probed_relays_are_bounded_and_a_forgotten_one_is_asked_again() -> None:
    """A receiving process meets the relays of every sharer it fetches
    from; the set of relays whose STUN was asked grew by each. Now the
    newest PROBED_KEPT are kept, and only a forgotten relay costs a probe."""
    t = Traversal(cast(Any, None), None)
    asked: list[tuple[str, ...]] = []

    async def fake_probe(relays: Sequence[str]) -> None:
        asked.append(tuple(relays))
        t.nat = NatReport(Mapping.UNKNOWN, None, False, 0, 0)

    t._probe = fake_probe  # type: ignore[method-assign]
    relays = [f"/ip4/198.51.100.{n % 250}/tcp/{4001 + n}/p2p/relay{n}" for n in range(PROBED_KEPT * 3)]
    for relay in relays:
        await t.probe([relay])
    assert len(asked) == len(relays)
    assert len(t._probed) == PROBED_KEPT
    await t.probe([relays[-1]])  # still known: no second probe
    assert len(asked) == len(relays)
    await t.probe([relays[0]])  # forgotten: asked again
    assert asked[-1] == (relays[0],) and len(t._probed) == PROBED_KEPT
