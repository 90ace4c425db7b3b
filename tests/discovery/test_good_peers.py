"""The peers that answered, kept for the peers file, stay bounded (fakes, no network)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import base58

from p2pshare.node.discovery import Discovery
from p2pshare.node.discovery.lookup import Candidate
from p2pshare.node.discovery.peers_file import MAX_PEERS


def _discovery() -> Discovery:
    host = SimpleNamespace(peer_id="self", peer_id_bytes=b"\x00self")
    table = SimpleNamespace(dht=None)
    return Discovery(cast(Any, host), cast(Any, table), advertise_interval=60.0, rpc_timeout=5.0, addrs=lambda: ())


def _cand(i: int) -> Candidate:
    return Candidate(b"\x00\x24" + i.to_bytes(34, "big"), [f"/ip4/198.51.100.{i % 250 + 1}/tcp/{4000 + i}"], 0, 1)


def _name(c: Candidate) -> str:
    return base58.b58encode(c.peer_id).decode("ascii")


async def test_good_peers_keep_only_the_newest_that_answered() -> None:
    disc = _discovery()
    cands = [_cand(i) for i in range(10 * MAX_PEERS)]
    for c in cands:
        disc._answered(c)  # every peer that ever answered an RPC used to stay for the whole run
    assert list(disc._good) == [_name(c) for c in cands[-MAX_PEERS:]]
    disc._answered(cands[-MAX_PEERS])  # the oldest kept one answers again: now the newest ...
    disc._answered(cands[0])  # ... and a long-gone one is back, pushing out the next oldest
    assert list(disc._good) == [_name(c) for c in [*cands[-MAX_PEERS + 2 :], cands[-MAX_PEERS], cands[0]]]
    assert len(disc.good_peers()) == MAX_PEERS
