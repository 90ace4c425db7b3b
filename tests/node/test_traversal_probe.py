"""The node's mapping probe: whom it may ask, and one probe at a time.

Issue 10: a node given only ``--bootstrap`` never probed (only configured
relays were asked), so DCUtR announced no public address and every round
failed. Bootstrap peers with a public IP are asked now; the receiver's own
probe waits for the start-up one instead of asking everyone twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio

from p2pshare.node.host import open_host
from p2pshare.node.identity import generate_identity
from p2pshare.node.natinfo import Mapping, NatReport
from p2pshare.node.traversal import Traversal

PUBLIC_PEER = "/ip4/203.0.113.2/tcp/4001/p2p/12D3KooWBoot1"
LOOPBACK_PEER = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWBoot2"


async def test_only_peers_beyond_our_lan_make_a_probe_worth_it() -> None:
    async with open_host(generate_identity()) as host:
        assert Traversal(host, None, [PUBLIC_PEER]).can_probe()
        assert not Traversal(host, None, [LOOPBACK_PEER]).can_probe()
        assert not Traversal(host, None).can_probe()


async def test_a_second_probe_waits_for_the_first_and_does_not_repeat_it(monkeypatch: pytest.MonkeyPatch) -> None:
    async with open_host(generate_identity()) as host:
        trav = Traversal(host, None, [PUBLIC_PEER])
        calls: list[tuple[str, ...]] = []

        async def fake_probe(relays: Sequence[str]) -> None:
            calls.append(tuple(relays))
            await trio.sleep(0.2)
            trav.nat = NatReport(Mapping.UNKNOWN, None, False, 0, 0)
            trav.observed = ["/ip4/203.0.113.194/tcp/4001"]

        monkeypatch.setattr(trav, "_probe", fake_probe)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trav.probe, [])  # the node's start-up probe
            await trio.sleep(0.05)
            await trav.probe([])  # the receiver's: waits, then finds the work done
            assert trav.observed == ["/ip4/203.0.113.194/tcp/4001"]
        assert calls == [()]
        await trav.probe(["/ip4/198.51.100.1/tcp/4001/p2p/12D3KooWRelay"])  # a relay not asked yet: asked
        assert calls == [(), ("/ip4/198.51.100.1/tcp/4001/p2p/12D3KooWRelay",)]


async def test_probe_settled_returns_once_the_running_probe_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    """DCUtR's initiator waits on this before its first CONNECT (issue 10)."""
    async with open_host(generate_identity()) as host:
        trav = Traversal(host, None, [PUBLIC_PEER])
        with trio.fail_after(0.1):
            await trav.probe_settled()  # no probe: at once

        async def fake_probe(relays: Sequence[str]) -> None:
            await trio.sleep(0.3)
            trav.observed = ["/ip4/203.0.113.194/tcp/4001"]

        monkeypatch.setattr(trav, "_probe", fake_probe)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trav.probe, [])
            await trio.sleep(0.05)
            await trav.probe_settled()
            assert trav.observed == ["/ip4/203.0.113.194/tcp/4001"]
