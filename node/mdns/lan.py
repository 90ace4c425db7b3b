"""What a node does with the peers mDNS finds: the LAN's own DHT.

Wiring between local discovery and Kademlia, apart from the ``Node``:
a peer met on the LAN is dialled and, when it answers Kademlia, put in the
routing table, so DHT lookups (a peer, a share's providers) work with no
bootstrap node at all; and a node whose table holds LAN peers only serves
Kademlia (two laptops in client mode could never look anything up from
each other).
"""

from __future__ import annotations

import logging

import trio

from p2pshare.node.discovery import Discovery
from p2pshare.node.discovery.peers import normalize_addr
from p2pshare.node.discovery.service import Target
from p2pshare.node.host import Host
from p2pshare.node.mdns.core import Found, is_lan_addr
from p2pshare.node.mdns.service import Mdns

__all__ = ["LAN_DHT_CHECK", "lan_dht", "met_on_lan", "serve_lan_dht"]

log = logging.getLogger(__name__)

#: Seconds between checks whether the DHT reaches beyond the LAN; with
#: bootstrap nodes configured but out of reach (no internet), a node that met
#: peers on the LAN serves the LAN's DHT after this long.
LAN_DHT_CHECK = 10.0


def lan_dht(mdns: bool, bootstrap: bool) -> bool:
    """With mDNS and no bootstrap node, the DHT is the LAN's own: serve it."""
    return mdns and not bootstrap


async def met_on_lan(discovery: Discovery, found: Found) -> None:
    """A peer announced itself on the LAN: probe it into the routing table."""
    addrs = tuple(a for a in (normalize_addr(x, found.peer_id) for x in found.addrs) if a)
    if not addrs:
        return
    log.info("met %s on the LAN at %s", found.peer_id, ", ".join(addrs))
    await discovery.probe(Target(found.peer_id, addrs))


async def serve_lan_dht(discovery: Discovery, host: Host, mdns: Mdns) -> None:
    """Serve Kademlia while the routing table holds LAN peers only (the
    bootstrap nodes are out of reach) and we are on a LAN: with no
    internet, a share's provider record can then still be found there.
    Not waiting for a peer first: a receiver that arrives later meets a
    server at once. Back to client mode as soon as a peer beyond the LAN
    is in the table: a NATed laptop must not pose as a server of the
    public DHT (between two checks it may, for up to LAN_DHT_CHECK s)."""
    table = discovery.table
    while True:
        await trio.sleep(LAN_DHT_CHECK)
        peers = discovery.routing_table_peers()
        lan_only = all(all(is_lan_addr(a) for a in host.peer_addrs(p)) for p in peers)
        want = lan_only and bool(mdns.interfaces)
        if want != table.server_mode:
            log.info("DHT %s: %s", "serves the LAN" if want else "client mode", f"{len(peers)} peers in the table")
            await table.set_server_mode(want)
