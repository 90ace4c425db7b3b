"""The py-libp2p side of the interop tests: the project's host, a KadDHT.

The host is ``node.host.open_host`` (Noise only, yamux only, one connection
per peer, the project's patches applied); the tests drive the py-libp2p
``IHost`` inside it (``Host.libp2p``), since they check protocol details
that the wrapper deliberately hides.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import multiaddr
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.records.validator import Validator
from libp2p.tools.anyio_service import background_trio_service

from p2pshare.node.host import open_host

INTEROP_NS = "interop"  # the namespace peer.mjs registers a validator for
SELF_ADDR_TTL = 24 * 3600  # seconds; outlives any test


@asynccontextmanager
async def open_py_host(
    listen: str = "/ip4/127.0.0.1/tcp/0", *, self_addrs_in_peerstore: bool = True
) -> AsyncIterator[Any]:
    """The project's host on loopback, as its py-libp2p ``IHost``; closed on exit.

    ``self_addrs_in_peerstore``: put the host's own listen addresses in its
    peerstore. py-libp2p 0.8.1 does not, so its Kademlia answers FIND_NODE
    for itself with an address-less entry, which js-libp2p then returns from
    findPeer (see test_kad.py); False keeps the upstream behaviour.
    """
    async with open_host(create_new_key_pair(), [listen]) as host:
        libp2p_host = host.libp2p
        if self_addrs_in_peerstore:
            libp2p_host.get_peerstore().add_addrs(
                libp2p_host.get_id(), libp2p_host.get_transport_addrs(), SELF_ADDR_TTL
            )
        yield libp2p_host


def p2p_addrs(host: Any) -> list[str]:
    """The host's listen addresses with /p2p/<id> appended."""
    pid = host.get_id().to_string()
    return [f"{a}/p2p/{pid}" if "/p2p/" not in str(a) else str(a) for a in host.get_addrs()]


async def connect(host: Any, addr: str, timeout: float = 10.0) -> ID:
    """Dial a full /p2p multiaddr; return the peer ID."""
    info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
    with trio.fail_after(timeout):
        await host.connect(info)
    return info.peer_id


class AcceptAll(Validator):
    """Accepts any value; picks the first. Test namespace only."""

    def validate(self, key: str, value: bytes) -> None:
        if not key.startswith(f"/{INTEROP_NS}/"):
            raise ValueError(f"not an /{INTEROP_NS}/ key: {key}")

    def select(self, key: str, values: list[bytes]) -> int:
        return 0


@asynccontextmanager
async def open_py_dht(host: Any, mode: DHTMode = DHTMode.SERVER) -> AsyncIterator[KadDHT]:
    """A running KadDHT on ``host`` that accepts /interop/... records."""
    dht = KadDHT(host, mode)
    dht.register_validator(INTEROP_NS, AcceptAll())
    async with background_trio_service(dht):
        yield dht


async def add_to_routing_table(dht: KadDHT, peer_id: ID, timeout: float = 5.0) -> None:
    """Add a connected peer; retries while identify has not yet filled its info."""
    with trio.fail_after(timeout):
        while not await dht.add_peer(peer_id):
            await trio.sleep(0.05)
