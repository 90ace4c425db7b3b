"""One Kademlia node interface over a py-libp2p KadDHT and a js-libp2p peer.

Lets the Kademlia interop tests build any mix of py and js nodes in the same
topology (a provider/putter, a hub, a finder) and run the same assertions.
"""

from __future__ import annotations

import base64
import hashlib
from contextlib import AsyncExitStack
from typing import Any, Protocol

import trio
from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.peer.id import ID

from ._pyhost import add_to_routing_table, connect, open_py_dht, open_py_host, p2p_addrs
from .conftest import JsPeer, JsPeerFactory


def make_cid(data: bytes) -> str:
    """CIDv1 (raw, sha2-256) in base32, the form both stacks parse."""
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


class KadNode(Protocol):
    impl: str
    peer_id: str
    addr: str

    async def connect_to(self, hub: KadNode) -> None: ...
    async def accept_from(self, peer: KadNode) -> None: ...
    async def provide(self, cid: str) -> None: ...
    async def find_providers(self, cid: str) -> dict[str, list[str]]: ...
    async def find_peer(self, peer_id: str) -> list[str]: ...
    async def put_value(self, key: str, value: bytes) -> None: ...
    async def get_value(self, key: str) -> bytes | None: ...


class PyKad:
    impl = "py"

    def __init__(self, host: Any, dht: KadDHT) -> None:
        self.host = host
        self.dht = dht
        self.peer_id = str(host.get_id())
        self.addr = p2p_addrs(host)[0]

    async def connect_to(self, hub: KadNode) -> None:
        peer = await connect(self.host, hub.addr)
        await add_to_routing_table(self.dht, peer)

    async def accept_from(self, peer: KadNode) -> None:
        # py adds a peer that only connected to it once the peer sends a KAD
        # request; a hub must know its spokes before any of them asks.
        await add_to_routing_table(self.dht, ID.from_base58(peer.peer_id))

    async def provide(self, cid: str) -> None:
        with trio.fail_after(15):
            assert await self.dht.provide(cid)

    async def find_providers(self, cid: str) -> dict[str, list[str]]:
        with trio.fail_after(15):
            infos = await self.dht.find_providers(cid, count=5)
        return {str(i.peer_id): [str(a) for a in i.addrs] for i in infos}

    async def find_peer(self, peer_id: str) -> list[str]:
        with trio.fail_after(15):
            info = await self.dht.find_peer(ID.from_base58(peer_id))
        return [] if info is None else [str(a) for a in info.addrs]

    async def put_value(self, key: str, value: bytes) -> None:
        with trio.fail_after(15):
            await self.dht.put_value(key, value)

    async def get_value(self, key: str) -> bytes | None:
        with trio.fail_after(15):
            return await self.dht.get_value(key)


class JsKad:
    impl = "js"

    def __init__(self, peer: JsPeer) -> None:
        self.peer = peer
        self.peer_id = peer.peer_id
        self.addr = peer.addr

    async def _wait_in_table(self, peer_id: str) -> None:
        # js adds a peer to its routing table once identify shows it serves
        # /ipfs/kad/1.0.0; until then its queries would wait for peers.
        with trio.fail_after(5):
            while not (await self.peer.call("routing_table", peer_id=peer_id))["has"]:
                await trio.sleep(0.05)

    async def connect_to(self, hub: KadNode) -> None:
        await self.peer.call("dial", addr=hub.addr)
        await self._wait_in_table(hub.peer_id)

    async def accept_from(self, peer: KadNode) -> None:
        await self._wait_in_table(peer.peer_id)

    async def provide(self, cid: str) -> None:
        await self.peer.call("provide", cid=cid, timeout_ms=15_000, timeout=20)

    async def find_providers(self, cid: str) -> dict[str, list[str]]:
        res = await self.peer.call("find_providers", cid=cid, count=1, timeout_ms=15_000, timeout=20)
        return {p["peer_id"]: p["addrs"] for p in res["providers"]}

    async def find_peer(self, peer_id: str) -> list[str]:
        res = await self.peer.call("find_peer", peer_id=peer_id, timeout_ms=15_000, timeout=20)
        assert res["peer_id"] == peer_id
        return list(res["addrs"])

    async def put_value(self, key: str, value: bytes) -> None:
        await self.peer.call("put_value", key=key, value_hex=value.hex(), timeout_ms=15_000, timeout=20)

    async def get_value(self, key: str) -> bytes | None:
        res = await self.peer.call("get_value", key=key, timeout_ms=15_000, timeout=20)
        return bytes.fromhex(res["value_hex"])


async def start_kad(stack: AsyncExitStack, js_peer: JsPeerFactory, impl: str) -> KadNode:
    """A DHT server node of the given implementation, stopped with ``stack``."""
    if impl == "js":
        return JsKad(await js_peer("--dht", "server"))
    host = await stack.enter_async_context(open_py_host())
    dht = await stack.enter_async_context(open_py_dht(host))
    return PyKad(host, dht)


async def star(
    stack: AsyncExitStack, js_peer: JsPeerFactory, hub_impl: str, *spoke_impls: str
) -> tuple[KadNode, list[KadNode]]:
    """A hub and spokes that know only the hub (and the hub knows them)."""
    hub = await start_kad(stack, js_peer, hub_impl)
    spokes = []
    for impl in spoke_impls:
        node = await start_kad(stack, js_peer, impl)
        await node.connect_to(hub)
        await hub.accept_from(node)
        spokes.append(node)
    return hub, spokes
