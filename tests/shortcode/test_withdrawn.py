"""A key withdrawn before its advertising task ran is never advertised.

Kademlia has no delete, and ``Discovery`` re-advertises every key it holds
until it is withdrawn; a key added after its withdrawal was therefore
re-advertised (and a provider record of ours served) until the process
ended. Two paths could do it: a share stopped before its ``_advertise``
task ran, and a short code whose keys were still being advertised when the
offer expired."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from p2pshare import sharecode
from p2pshare.node.api import Node, NodeConfig
from p2pshare.node.discovery.keys import provider_key
from p2pshare.node.shortcode import ShortCodeEvent
from p2pshare.node.shortcode._trio import advertise_short_code

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


async def test_a_share_stopped_before_its_advert_ran_is_not_advertised(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    with trio.fail_after(60):
        async with Node(NodeConfig(listen_addrs=[LOOPBACK], dht_server=True, autorelay=False)) as boot:
            addr = f"{boot.host.listen_addrs()[0]}/p2p/{boot.peer_id}"
            async with Node(NodeConfig(listen_addrs=[LOOPBACK], bootstrap=[addr], autorelay=False)) as a:
                assert await a.discovery.wait_bootstrapped(10)
                kept = await a.start_sharing("A", "", [tmp_path / "a.txt"])  # advertised, kept
                stopped = await a.start_sharing("B", "", [tmp_path / "a.txt"])
                await a.stop_sharing(stopped, grace=0)  # before its advertising task ran
                await trio.sleep(1.0)  # the tasks have run
                ads = a.discovery._ads
                assert provider_key(sharecode.dht_key(kept.code.share_code)) in ads
                assert provider_key(sharecode.dht_key(stopped.code.share_code)) not in ads


class _SlowDiscovery:
    """Joins the DHT only after 30 s (no bootstrap node answers at first)."""

    def __init__(self) -> None:
        self.advertised: list[bytes] = []

    async def wait_bootstrapped(self, timeout: float) -> bool:
        await trio.sleep(timeout)
        return False

    async def advertise(self, key: bytes) -> int:
        self.advertised.append(key)
        return 0


async def test_short_code_keys_are_not_advertised_after_the_offer_expired(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[ShortCodeEvent] = []
    discovery = _SlowDiscovery()
    expires_at = trio.current_time() + 5.0  # --code-ttl 5: expired while waiting for the DHT
    await advertise_short_code(discovery, [b"k1", b"k2"], events.append, expires_at)  # type: ignore[arg-type]
    assert discovery.advertised == [] and events == []
    await advertise_short_code(discovery, [b"k1", b"k2"], events.append, trio.current_time() + 3600)  # type: ignore[arg-type]
    assert discovery.advertised == [b"k1", b"k2"]
