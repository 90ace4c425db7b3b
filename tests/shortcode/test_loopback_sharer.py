"""A short code whose sharer the DHT lists only at loopback addresses: the
receiver (listening beyond loopback) does not dial them, as for any DHT
answer, and says so instead of "no sharer found"."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2pshare.node.api import Node, NodeConfig
from p2pshare.node.errors import PeerUnreachableError
from p2pshare.sharecode.short import ShortCode
from tests.cli.helpers import own_address

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


async def test_a_sharer_found_only_at_loopback_is_named_not_missing(tmp_path: Path) -> None:
    mine = own_address()
    if mine is None:
        pytest.skip("this machine has no address beyond loopback")
    (tmp_path / "a.txt").write_text("hello")
    code = ShortCode(4127, ("acid", "zoom", "yoga"))
    with trio.fail_after(90):
        async with Node(NodeConfig(listen_addrs=[LOOPBACK], dht_server=True, autorelay=False)) as boot:
            addr = f"{boot.host.listen_addrs()[0]}/p2p/{boot.peer_id}"
            sharer_cfg = NodeConfig(listen_addrs=[LOOPBACK], bootstrap=[addr], autorelay=False)
            rx_cfg = NodeConfig(listen_addrs=[LOOPBACK, f"/ip4/{mine}/tcp/0"], bootstrap=[addr], autorelay=False)
            async with Node(sharer_cfg) as a, Node(rx_cfg) as rx:
                info = await a.start_sharing("A", "", [tmp_path / "a.txt"])
                advertised = trio.Event()
                a.offer_short_code(info, tries=3, ttl=600, on_event=lambda _e: advertised.set(), code=code)
                await advertised.wait()
                with pytest.raises(PeerUnreachableError, match="only at loopback or link-local addresses"):
                    await rx.resolve_short_code(code, timeout=20)
