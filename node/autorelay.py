"""AutoRelay: find relays without being told (issue 10).

A node behind a NAT is reachable only through a relay; a stranger with
default flags has none configured. This service offers the relay client
(:class:`~p2pshare.node.circuit.client.RelayClient`, whose pure schedule
decides which candidates to hold) every relay the node comes across:

* **peers that speak the hop protocol**: any peer we are connected to
  (bootstrap nodes, DHT peers met in lookups, peers that dialled us) whose
  identify lists ``/libp2p/circuit/relay/0.2.0/hop``, with its measured RTT.
  Public IPFS nodes run the relay service with small limits (128 KiB and
  2 minutes per circuit): enough to hole-punch through, not to carry a file;
* **community relays**: p2pshare nodes that AutoNAT confirmed public and
  that serve relay v2 with limits suited to file transfer advertise
  themselves in the DHT under :data:`COMMUNITY_RELAY_KEY`; they are offered
  as relays that carry data, which the schedule ranks first.

It starts with the node, before AutoNAT has a verdict, and offers nothing
once AutoNAT confirms the node public (others reach it directly). Peers
that serve AutoNAT are handed to the AutoNAT client the same way, so a node
with no relay configured can still learn whether it is reachable.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from p2pshare.node.autonat.wire import PROTOCOL_ID as AUTONAT_PROTOCOL_ID
from p2pshare.node.circuit.client import RelayClient
from p2pshare.node.circuit.wire import HOP_PROTOCOL_ID
from p2pshare.node.discovery import Discovery
from p2pshare.node.host import Host
from p2pshare.sharecode.multiaddrs import IpClass, ip_class, ip_text, is_circuit, with_peer

if TYPE_CHECKING:
    from trio_typing import TaskStatus  # trio's own name is hidden by trio-stubs

logger = logging.getLogger(__name__)

__all__ = ["COMMUNITY_RELAY_KEY", "AutoRelay", "lookup_limit", "next_lookup_in", "relay_addr_for"]

#: The DHT key community relays advertise under (a provider record; the
#: hash keeps it the same size as share keys and reveals nothing else).
COMMUNITY_RELAY_KEY = hashlib.sha256(b"/p2pshare/community-relay/1").digest()
#: Seconds after a connection opens before its identify is looked at, and a
#: second look for slow identifies (py-libp2p identifies on its own).
IDENTIFY_LOOKS = (1.0, 4.0)
#: Seconds between sweeps over every connected peer (events may be dropped).
SWEEP_EVERY = 30.0
#: Seconds before the next DHT lookup for community relays. While the node
#: holds no reservation that carries data: soon at first, then every 30 s.
#: A node that has just started can look before its routing table is full,
#: or just before a community relay's provider record lands; with a flat
#: 30 s the next look came after a receiver behind a symmetric NAT had
#: given up (natlab internet, symmetric:symmetric, once in CI). Rarely once
#: a reservation carries data.
LOOKUP_SOON = (2.0, 4.0, 8.0, 15.0, 30.0)
LOOKUP_LATER = 600.0
LOOKUP_TIMEOUT = 20.0
#: Community relays a lookup waits for once a reservation carries data (more
#: to choose from for the next upgrade); before that, the first one ends it.
LOOKUP_LIMIT_LATER = 20
#: Relay candidates remembered for logging once each (state stays bounded).
OFFERED_KEPT = 1024


def next_lookup_in(carrying: bool, misses: int) -> float:
    """Seconds to the next community relay lookup (pure): ``LOOKUP_LATER``
    once a reservation carries data, else ``LOOKUP_SOON[misses]`` (its last
    value repeated), ``misses`` being the lookups since one last did."""
    if carrying:
        return LOOKUP_LATER
    return LOOKUP_SOON[min(max(misses, 0), len(LOOKUP_SOON) - 1)]


def lookup_limit(carrying: bool) -> int:
    """Community relays a lookup waits for (pure): while no reservation
    carries data, the first one found ends it; once one does,
    ``LOOKUP_LIMIT_LATER``. A lookup that waits for every answer waits for
    its slowest peer, and a peer that has left the network takes the whole
    per-query timeout (5 s) to give up on: the provider was known after one
    hop, the sharer reserved on it 5 s later, and a receiver behind a
    symmetric NAT had given up meanwhile (natlab internet,
    symmetric:symmetric, in CI)."""
    return LOOKUP_LIMIT_LATER if carrying else 1


def relay_addr_for(peer_id: str, addrs: list[str], *, allow_loopback: bool = False) -> str | None:
    """The address to dial a relay at: its best non-loopback, non-circuit TCP address.

    ``allow_loopback``: for a node that listens on loopback only (tests and
    demos on one machine), whose peers can only be on this host.
    """

    def rank(a: str) -> int:
        cls = ip_class(ip_text(a) or "")
        return {IpClass.PUBLIC: 0, IpClass.PRIVATE: 1}.get(cls, 2) if cls is not None else 0

    usable = []
    for a in addrs:
        if is_circuit(a) or "/tcp/" not in a:
            continue
        cls = ip_class(ip_text(a) or "")
        if cls is IpClass.LINK_LOCAL or (cls is IpClass.LOOPBACK and not allow_loopback):
            continue
        usable.append(a)
    for a in sorted(usable, key=rank):
        full = with_peer(a, peer_id)
        if full is not None:
            return full
    return None


class AutoRelay:
    """Feeds the relay client with relays found among peers and in the DHT."""

    def __init__(
        self,
        host: Host,
        relay: RelayClient,
        discovery: Discovery | None,
        *,
        confirmed_public: Callable[[], bool],
        allow_loopback: bool = False,
        on_autonat_server: Callable[[str], object] | None = None,
    ) -> None:
        self.host = host
        self.relay = relay
        self.discovery = discovery
        self._public = confirmed_public
        self._loopback = allow_loopback
        self._on_autonat = on_autonat_server
        #: Peers offered lately (to log each once; at most OFFERED_KEPT).
        self.offered: set[str] = set()

    def consider(self, peer_id: str) -> bool:
        """Offer ``peer_id`` if it speaks the hop protocol; True if offered.

        A peer that serves AutoNAT is handed to ``on_autonat_server`` too:
        with no relay configured, the peers met are the only servers a
        node can ask whether it is reachable.
        """
        protocols = self.host.peer_protocols(peer_id)
        if not protocols:
            return False
        addr = relay_addr_for(peer_id, self.host.peer_addrs(peer_id), allow_loopback=self._loopback)
        if addr is None:
            return False
        if AUTONAT_PROTOCOL_ID in protocols and self._on_autonat is not None:
            self._on_autonat(addr)
        if self._public() or HOP_PROTOCOL_ID not in protocols:
            return False
        if peer_id not in self.offered:
            logger.info("autorelay: %s is a relay candidate", peer_id)
            if len(self.offered) >= OFFERED_KEPT:  # a long-lived node meets relays without end
                self.offered.clear()
            self.offered.add(peer_id)
        self.relay.offer(addr, rtt=self.host.rtt(peer_id))
        return True

    def sweep(self) -> int:
        """Consider every connected peer; how many were offered."""
        return sum(self.consider(p) for p in self.host.connected_peers())

    async def _look_after_identify(self, peer_id: str) -> None:
        waited = 0.0
        for at in IDENTIFY_LOOKS:
            await trio.sleep(at - waited)
            waited = at
            if self.consider(peer_id):
                return

    async def _watch_connections(self) -> None:
        async with self.host.connection_events() as events, trio.open_nursery() as nursery:
            async for event in events:
                if event.opened and event.path.value == "direct" and not self._public():
                    nursery.start_soon(self._look_after_identify, event.peer_id)

    async def _sweep_forever(self) -> None:
        while True:
            self.sweep()
            await trio.sleep(SWEEP_EVERY)

    async def _community_lookups(self) -> None:
        if self.discovery is None:
            return
        await self.discovery.wait_bootstrapped(LOOKUP_TIMEOUT)
        misses = 0
        while True:
            if not self._public():
                found = 0
                limit = lookup_limit(any(r.carries_data for r in self.relay.reservations()))
                try:
                    providers = await self.discovery.find_providers(
                        COMMUNITY_RELAY_KEY, timeout=LOOKUP_TIMEOUT, limit=limit
                    )
                except Exception as e:  # noqa: BLE001 - the DHT is best effort
                    logger.debug("autorelay: community relay lookup failed: %s", e)
                    providers = []
                for info in providers:
                    addr = relay_addr_for(info.peer_id, list(info.addrs), allow_loopback=self._loopback)
                    if addr is not None and info.peer_id != self.host.peer_id:
                        self.relay.offer(addr, carries_data=True)
                        found += 1
                logger.info("autorelay: %d community relay(s) found in the DHT", found)
            carrying = any(r.carries_data for r in self.relay.reservations())
            await trio.sleep(next_lookup_in(carrying, misses))
            misses = 0 if carrying else misses + 1

    async def serve(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_connections)
            nursery.start_soon(self._sweep_forever)
            nursery.start_soon(self._community_lookups)
            task_status.started()
