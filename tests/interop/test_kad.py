"""Kademlia (/ipfs/kad/1.0.0) across py-libp2p and js-libp2p.

Every test is a star: a hub and two spokes that know only the hub, so each
record or peer address must cross the hub. The ids read "<first spoke>-<hub>-
<second spoke>", e.g. ``py-js-js``: py provides, a js hub stores, js finds.
Combinations where all three nodes are the same stack are left out.
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from typing import Any

import pytest

from ._kad import JsKad, PyKad, make_cid, star
from ._pyhost import open_py_dht, open_py_host
from .conftest import JsPeerFactory

pytestmark = pytest.mark.interop

MIXED = ["py-js-js", "js-py-py", "py-py-js", "js-js-py", "py-js-py", "js-py-js"]


def _trio(name: str) -> tuple[str, str, str]:
    a, hub, b = name.split("-")
    return a, hub, b


def _same_endpoint(addr_a: str, addrs_b: list[str]) -> bool:
    """``addr_a`` (with /p2p) is among ``addrs_b`` (with or without /p2p)."""
    bare = addr_a.split("/p2p/")[0]
    return any(a.split("/p2p/")[0] == bare for a in addrs_b)


@pytest.mark.parametrize("combo", MIXED)
async def test_kad_provide_then_find_providers(js_peer: JsPeerFactory, combo: str) -> None:
    provider_impl, hub_impl, finder_impl = _trio(combo)
    async with AsyncExitStack() as stack:
        _, (provider, finder) = await star(stack, js_peer, hub_impl, provider_impl, finder_impl)
        cid = make_cid(os.urandom(16))
        await provider.provide(cid)
        found = await finder.find_providers(cid)
        assert provider.peer_id in found, found
        # The finder must also learn how to reach the provider.
        assert _same_endpoint(provider.addr, found[provider.peer_id]), found


@pytest.mark.parametrize("combo", MIXED)
async def test_kad_find_peer_through_hub(js_peer: JsPeerFactory, combo: str) -> None:
    target_impl, hub_impl, seeker_impl = _trio(combo)
    async with AsyncExitStack() as stack:
        _, (target, seeker) = await star(stack, js_peer, hub_impl, target_impl, seeker_impl)
        addrs = await seeker.find_peer(target.peer_id)
        assert _same_endpoint(target.addr, addrs), addrs


@pytest.mark.parametrize("combo", MIXED)
async def test_kad_put_then_get_value(js_peer: JsPeerFactory, combo: str) -> None:
    putter_impl, hub_impl, getter_impl = _trio(combo)
    async with AsyncExitStack() as stack:
        _, (putter, getter) = await star(stack, js_peer, hub_impl, putter_impl, getter_impl)
        key = f"/interop/{os.urandom(8).hex()}"
        value = os.urandom(32)
        await putter.put_value(key, value)
        assert await getter.get_value(key) == value


async def _find_node_for_itself(
    js_peer: JsPeerFactory, self_addrs_in_peerstore: bool
) -> tuple[str, str, list[dict[str, Any]]]:
    """js sends one FIND_NODE(py's id) to py; returns py's id, addr and the answer."""
    js = JsKad(await js_peer("--dht", "server"))
    async with open_py_host(self_addrs_in_peerstore=self_addrs_in_peerstore) as host, open_py_dht(host) as dht:
        py = PyKad(host, dht)
        await js.connect_to(py)
        res = await js.peer.call("kad_find_node", peer_id=py.peer_id, key_peer_id=py.peer_id)
        return py.peer_id, py.addr, [p for p in res["closer"] if p["peer_id"] == py.peer_id]


async def test_kad_py_find_node_for_itself_has_no_addrs_go_filters_addrless_peers(js_peer: JsPeerFactory) -> None:
    """Upstream py-libp2p 0.8.1 answers FIND_NODE for its own id with itself
    and no addresses: a host's peerstore lacks its own listen addresses.
    go-libp2p drops address-less entries from FIND_NODE answers; js-libp2p
    returns such an entry from findPeer as the result, so a js peer "finds" a
    py peer it cannot dial (seen as a flaky find_peer[py-*-js]). Fails when
    upstream fixes it; until then py hosts must add their own addresses to
    their peerstore (``self_addrs_in_peerstore``)."""
    peer_id, _, entries = await _find_node_for_itself(js_peer, self_addrs_in_peerstore=False)
    assert entries == [{"peer_id": peer_id, "addrs": []}]


async def test_kad_py_find_node_for_itself_lists_addrs_once_in_own_peerstore(js_peer: JsPeerFactory) -> None:
    """The workaround for the test above works as js sees it."""
    peer_id, addr, entries = await _find_node_for_itself(js_peer, self_addrs_in_peerstore=True)
    assert len(entries) == 1
    assert _same_endpoint(addr, list(entries[0]["addrs"])), entries
