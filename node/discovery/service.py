"""Kademlia discovery for p2pshare: bootstrap, advertise shares, find sharers.

py-libp2p's ``KadDHT`` serves inbound ``/ipfs/kad/1.0.0`` RPCs and keeps the
routing table; every outbound lookup is ours (:mod:`.lookup` over
:mod:`._rpc`), because upstream's returns one provider up to 20 times and
stops early on those duplicates, answers ``find_providers`` and
``find_peer`` from local state without asking the network (stale addresses
after a peer restarts), and reports ``provide()`` as done after one send.

Policy: records are refused (strict validation with no namespace), so the
node serves provider records and peer routing only; outbound lookups add to
the routing table only peers that answered a Kademlia RPC (hence servers).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
from multiaddr import Multiaddr

from p2pshare.node import _libp2p_records as records
from p2pshare.node.host import Host, HostError

from . import wire
from ._rpc import PROTOCOL_ID, KadClient, RpcError
from .adverts import AdvertSchedule
from .keys import DiscoveryError, provider_key
from .lookup import Candidate, K, Lookup, LookupStats
from .peers import (
    MAX_ADDRS_PER_PEER,
    PeerInfo,
    addr_scope,
    is_dialable_tcp,
    merge_peer_infos,
    min_scope,
    normalize_addr,
)
from .peers_file import MAX_PEERS, RememberedPeer

__all__ = ["Discovery", "Target"]

if TYPE_CHECKING:
    from trio_typing import TaskStatus  # trio's own name is hidden by trio-stubs

    from p2pshare.node.host import KadTable

logger = logging.getLogger(__name__)

# Pause between advertising two keys: py-libp2p servers reset a peer's
# 11th ADD_PROVIDER within 10 s, and every key goes to the same k peers.
_KEY_PACING = 1.1
_PROVIDE_TIMEOUT = 60.0
_TABLE_QUEUE = 256
# Peers that answered, kept for the peers file: it takes the newest MAX_PEERS
# (merge_remembered), so older ones were only memory that grew all run long.
_MAX_GOOD = MAX_PEERS


@dataclass(frozen=True)
class Target:
    """A bootstrap target: known peer ID (or None: learn it by dialling) and addresses."""

    peer_id: str | None
    addrs: tuple[str, ...]


def _id(peer_id: str) -> bytes:
    try:
        return records.peer_id_to_bytes(peer_id)
    except ValueError:
        raise DiscoveryError(f"bad peer ID {peer_id[:64]!r}") from None


def _scoped(addrs: Sequence[str], floor: int) -> list[str]:
    return [a for a in addrs if addr_scope(a) >= floor]


#: Seconds a lookup goes on once it has found what it looks for: time for
#: other answers (a newer record, more providers) from peers that answer,
#: not for a peer that has left the network, whose query takes the whole
#: per-query timeout (5 s) to fail. Waiting for such stragglers delayed a
#: receiver's first dial, and a sharer's first community relay, by 5 s
#: (natlab internet: the lab's departed hosts stay in DHT answers, as dead
#: peers do on the public network).
FOUND_GRACE = 1.0


def _end_soon(scope: trio.CancelScope) -> None:
    """End the lookup in ``scope`` at most ``FOUND_GRACE`` s from now."""
    scope.deadline = min(scope.deadline, trio.current_time() + FOUND_GRACE)


class Discovery:
    """A running discovery service; made by :func:`node.discovery.open_discovery`."""

    def __init__(
        self,
        host: Host,
        table: KadTable,
        *,
        advertise_interval: float,
        rpc_timeout: float,
        addrs: Callable[[], Sequence[str]],
    ) -> None:
        self.host = host
        self.table = table
        #: py-libp2p's KadDHT itself (opaque; for tests).
        self.dht = table.dht
        self.peer_id = host.peer_id
        self._self = host.peer_id_bytes
        self._client = KadClient(host, timeout=rpc_timeout)
        self._addrs = addrs
        self._ads = AdvertSchedule(advertise_interval)
        self._wake = trio.Event()
        self._good: dict[str, RememberedPeer] = {}
        self._table_send, self._table_recv = trio.open_memory_channel[tuple[str, tuple[str, ...]]](_TABLE_QUEUE)
        #: Stats of the latest finished lookup (for logs, tests, measurements).
        self.last_lookup: LookupStats | None = None

    # -- routing table -------------------------------------------------

    def routing_table_peers(self) -> list[str]:
        return self.table.peer_ids()

    async def wait_bootstrapped(self, timeout: float) -> bool:
        """True once the routing table has a peer; False if ``timeout`` passes first."""
        return await self._wait_table(lambda: self.table.size() > 0, timeout)

    async def wait_in_table(self, peers: Sequence[str], timeout: float) -> bool:
        """True once one of ``peers`` is in the routing table (adds are queued)."""
        wanted = set(peers)
        return await self._wait_table(lambda: not wanted.isdisjoint(self.table.peer_ids()), timeout)

    async def _wait_table(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait on the table's changes until ``done()``; its value at the end."""
        with trio.move_on_after(timeout):
            while not done():
                await self.table.wait_changed()
        return done()

    def _known_addrs(self, peer: str) -> list[str]:
        raw = self.host.peer_addrs(peer)
        out = [normalize_addr(a, peer) for a in raw[: 2 * MAX_ADDRS_PER_PEER]]
        return [a for a in dict.fromkeys(out) if a]

    def _seeds(self, key: bytes) -> list[tuple[bytes, list[str]]]:
        peers = self.table.closest(key, K)
        return [(p, self._known_addrs(records.peer_id_to_text(p))) for p in peers]

    def _answered(self, cand: Candidate) -> None:
        """Queue ``cand`` for the routing table: it answered, so it is a server."""
        peer = wire.WirePeer(cand.peer_id, []).peer_id_str
        addrs = tuple(a for a in cand.addrs if is_dialable_tcp(a))[:8]
        if addrs:
            self._good.pop(peer, None)  # re-inserted as the newest: the dict runs oldest first
            self._good[peer] = RememberedPeer(peer, addrs, time.time())
            while len(self._good) > _MAX_GOOD:
                del self._good[next(iter(self._good))]
        try:
            self._table_send.send_nowait((peer, addrs))
        except trio.WouldBlock:
            pass  # the table will hear of it again

    def _failed(self, cand: Candidate) -> None:
        # The last peer stays: an empty table finds nothing until the next
        # bootstrap round (minutes away), and one failed query (a timeout
        # under load) says little about the next.
        if self.table.size() <= 1:
            return
        try:
            self.table.remove(cand.peer_id)
        except Exception:
            pass

    async def serve_table_updates(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Add answering peers to the routing table, one at a time.

        Adding may ping the oldest peer of a full bucket, so it runs here
        rather than inside lookups.
        """
        task_status.started()
        async for peer, addrs in self._table_recv:
            maddrs = []
            for a in addrs or self._known_addrs(peer):
                try:
                    maddrs.append(Multiaddr(a))
                except Exception:
                    pass
            if not maddrs:
                continue
            with trio.move_on_after(5):
                await self.table.add(peer, maddrs)

    def good_peers(self) -> list[RememberedPeer]:
        """The newest ``MAX_PEERS`` peers that answered an RPC during this run, newest first."""
        return sorted(self._good.values(), key=lambda p: p.last_ok, reverse=True)

    # -- the lookup driver ---------------------------------------------

    async def _run_lookup(
        self,
        lookup: Lookup,
        query: Callable[[Candidate], Awaitable[wire.Answer]],
        on_answer: Callable[[Candidate, wire.Answer], bool],
        done: Callable[[], bool] = lambda: False,
    ) -> None:
        """Drive ``lookup`` until it finishes or ``done()``; cancel what is in flight.

        ``on_answer`` sees each answer (with scope-filtered addresses) and says
        whether it held results.
        """
        send, recv = trio.open_memory_channel[tuple[Candidate, wire.Answer | None]](math.inf)

        async def ask(cand: Candidate) -> None:
            try:
                answer: wire.Answer | None = await query(cand)
            except RpcError as e:
                logger.debug("kad query to %s failed: %s", wire.WirePeer(cand.peer_id, []).peer_id_str, e)
                answer = None
            send.send_nowait((cand, answer))

        async with trio.open_nursery() as nursery:
            while not done():
                for cand in lookup.next_queries():
                    nursery.start_soon(ask, cand)
                if lookup.finished:
                    break
                cand, answer = await recv.receive()
                if answer is None:
                    lookup.on_failure(cand.peer_id)
                    self._failed(cand)
                    continue
                floor = min_scope(cand.addrs)
                closer = [(p.peer_id, _scoped(p.addrs, floor)) for p in answer.closer]
                hit = on_answer(cand, answer)
                lookup.on_response(cand.peer_id, closer, hit=hit)
                self._answered(cand)
            nursery.cancel_scope.cancel()

    async def closest_peers(self, key: bytes, *, timeout: float) -> list[Candidate]:
        """The up to ``k`` closest peers to ``key`` that answered (FIND_NODE lookup)."""
        lookup = Lookup(key, self._self)
        lookup.add_peers(self._seeds(key))
        start = trio.current_time()

        async def query(c: Candidate) -> wire.Answer:
            peer = wire.WirePeer(c.peer_id, []).peer_id_str
            return await self._client.find_node(peer, c.addrs, c.peer_id, key)

        with trio.move_on_after(timeout):
            await self._run_lookup(lookup, query, lambda c, a: False)
        self.last_lookup = lookup.stats(entries=0, results=0, seconds=trio.current_time() - start)
        return lookup.closest()

    # -- providers ------------------------------------------------------

    async def find_providers(self, dht_key: bytes, *, timeout: float, limit: int = 20) -> list[PeerInfo]:
        """Peers advertising ``dht_key``: each once, addresses merged, us excluded.

        Returns what was found when the lookup ends, ``limit`` distinct
        providers are known, or ``timeout`` passes (possibly ``[]``).
        """
        return (await self.lookup_providers(dht_key, timeout=timeout, limit=limit))[0]

    async def lookup_providers(
        self, dht_key: bytes, *, timeout: float, limit: int = 20
    ) -> tuple[list[PeerInfo], LookupStats | None]:
        """:meth:`find_providers`, and how the lookup went (None: none ran),
        for callers that decide on it (a short code looks again only after a
        lookup that failed for want of answers)."""
        key = provider_key(dht_key)
        if limit <= 0:
            return [], None
        found: list[PeerInfo] = []
        distinct: set[str] = set()
        entries = 0
        for pid, local_addrs in self.table.local_providers(key):
            found.append(PeerInfo(pid, local_addrs))
            if pid != self.peer_id:
                distinct.add(pid)
        lookup = Lookup(key, self._self)
        lookup.add_peers(self._seeds(key))
        start = trio.current_time()

        async def query(c: Candidate) -> wire.Answer:
            peer = wire.WirePeer(c.peer_id, []).peer_id_str
            return await self._client.get_providers(peer, c.addrs, c.peer_id, key)

        scope = trio.CancelScope(deadline=start + timeout)

        def on_answer(c: Candidate, answer: wire.Answer) -> bool:
            nonlocal entries
            floor = min_scope(c.addrs)
            for p in answer.providers:
                entries += 1
                pid = p.peer_id_str
                found.append(PeerInfo(pid, _scoped(p.addrs, floor)))
                if pid != self.peer_id:
                    distinct.add(pid)
            if distinct:
                _end_soon(scope)
            return bool(answer.providers)

        with scope:
            await self._run_lookup(lookup, query, on_answer, lambda: len(distinct) >= limit)
        result = merge_peer_infos(found, exclude=self.peer_id)[:limit]
        stats = self.last_lookup = lookup.stats(
            entries=entries, results=len(result), seconds=trio.current_time() - start
        )
        logger.debug("find_providers: %s", stats)
        return result, stats

    async def advertise(self, dht_key: bytes, *, timeout: float = 30.0) -> int:
        """Advertise ``dht_key`` now and keep re-advertising it until withdrawn.

        Waits (within ``timeout``) for the routing table, stores our provider
        record at the ``k`` closest peers and returns how many took it (0 if
        none in time; the background loop then retries, first after 30 s).
        """
        key = provider_key(dht_key)
        self._ads.add(key, trio.current_time())
        # Answer GET_PROVIDERS for it at once: on a LAN met through mDNS the
        # asker may reach us before any other peer took our record.
        if addrs := self._my_addrs():
            self.table.add_local_provider(key, self._self, addrs)
        stored = 0
        with trio.move_on_after(timeout):
            if await self.wait_bootstrapped(timeout):
                stored = await self._provide(key)
        self._reschedule(key, stored)
        return stored

    def withdraw(self, dht_key: bytes) -> None:
        """Stop re-advertising ``dht_key``.

        Kademlia has no delete: records already stored elsewhere stay until
        they expire (48 h in go-, js- and py-libp2p) unless refreshed.
        """
        key = provider_key(dht_key)
        self._ads.remove(key)
        self.table.drop_local_provider(key, self.host.peer_id)

    def addresses_changed(self) -> None:
        """Our addresses changed (a relay reservation came or went): re-advertise soon.

        A code printed before the node had a relay still works because the
        receiver also looks the sharer up in the DHT; the records there must
        carry the new circuit addresses. Re-advertising is paced by
        ``serve_advertising`` (one key at a time), at most once per
        ``MIN_READVERTISE`` seconds per key (:mod:`.adverts`).
        """
        self._ads.addresses_changed(trio.current_time())
        self._wake.set()

    def advertised_count(self) -> int:
        return len(self._ads)

    def _reschedule(self, key: bytes, stored: int) -> None:
        self._ads.done(key, stored, trio.current_time(), jitter=random.uniform(0.9, 1.0))
        self._wake.set()

    def my_addrs(self) -> list[str]:
        """The addresses we advertise, normalised (no ``/p2p``), bounded."""
        return self._my_addrs()

    def _my_addrs(self) -> list[str]:
        out = []
        for a in self._addrs():
            norm = normalize_addr(a, self.peer_id)
            if norm and norm not in out:
                out.append(norm)
        return out[:MAX_ADDRS_PER_PEER]

    async def _provide(self, key: bytes) -> int:
        addrs = self._my_addrs()
        if not addrs:
            logger.warning("not advertising: this node has no address to advertise")
            return 0
        self.table.add_local_provider(key, self._self, addrs)
        closest = await self.closest_peers(key, timeout=_PROVIDE_TIMEOUT / 2)
        stored = 0

        async def store(c: Candidate) -> None:
            nonlocal stored
            peer = wire.WirePeer(c.peer_id, []).peer_id_str
            try:
                await self._client.add_provider(peer, c.addrs, key, self._self, addrs)
                stored += 1
            except RpcError as e:
                logger.debug("ADD_PROVIDER to %s failed: %s", peer, e)

        async with trio.open_nursery() as nursery:
            for c in closest:
                nursery.start_soon(store, c)
        logger.debug("advertised a share to %d of %d peers", stored, len(closest))
        return stored

    async def serve_advertising(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Re-advertise each key when due, one key at a time."""
        task_status.started()
        while True:
            for key in self._ads.due(trio.current_time()):
                if not self._ads.start(key, trio.current_time()):
                    continue  # withdrawn meanwhile
                stored = 0
                with trio.move_on_after(_PROVIDE_TIMEOUT):
                    try:
                        stored = await self._provide(key)
                    except Exception as e:  # a bug here must not take the node down
                        logger.warning("advertising failed: %s: %s", type(e).__name__, e)
                        logger.debug("traceback", exc_info=True)
                self._reschedule(key, stored)
                await trio.sleep(_KEY_PACING)
            self._wake = trio.Event()
            with trio.move_on_at(self._ads.next_due()):
                await self._wake.wait()

    # -- peer routing ---------------------------------------------------

    async def find_peer(self, peer_id: str, *, timeout: float) -> list[str]:
        """Current addresses of ``peer_id``, asking the network (never only local state).

        Addresses from the newest record the peer signed come first, then
        the others peers reported. The lookup stops early once the peer itself
        answers at the addresses found. ``[]`` if nothing was found in time.
        """
        tkey = _id(peer_id)
        if tkey == self._self:
            return self._my_addrs()
        records: list[wire.SignedAddrs] = []
        plain: list[str] = []
        reached = False
        lookup = Lookup(tkey, self._self)
        lookup.add_peers(self._seeds(tkey))
        start = trio.current_time()
        scope = trio.CancelScope(deadline=start + timeout)

        async def query(c: Candidate) -> wire.Answer:
            peer = wire.WirePeer(c.peer_id, []).peer_id_str
            return await self._client.find_node(peer, c.addrs, c.peer_id, tkey, verify_for=tkey)

        def on_answer(c: Candidate, answer: wire.Answer) -> bool:
            nonlocal reached
            floor = min_scope(c.addrs)
            hit = False
            for p in answer.closer:
                if p.peer_id == tkey:
                    hit = True
                    plain.extend(_scoped(p.addrs, floor))
                    if p.record is not None:
                        records.append(p.record)
            if c.peer_id == tkey:
                reached = True
                plain[:0] = c.addrs
                if answer.sender_record is not None:
                    records.append(answer.sender_record)
            if hit:
                _end_soon(scope)
            return hit

        with scope:
            await self._run_lookup(lookup, query, on_answer, lambda: reached)
        records.sort(key=lambda r: r.seq, reverse=True)
        ordered = [a for r in records[:1] for a in r.addrs] + plain
        merged = merge_peer_infos([PeerInfo(peer_id, ordered)])
        self.last_lookup = lookup.stats(entries=len(plain), results=len(merged), seconds=trio.current_time() - start)
        return merged[0].addrs if merged else []

    # -- bootstrap -----------------------------------------------------

    async def probe(self, target: Target) -> str | None:
        """Connect to a bootstrap target and check it answers FIND_NODE; its ID or None."""
        peer = target.peer_id
        addrs = [a for a in target.addrs]
        try:
            if peer is None:
                peer = await self.host.connect_unknown(addrs[0], timeout=self._client.timeout)
            await self._client.find_node(peer, addrs, _id(peer), self._self)
        except (RpcError, HostError, DiscoveryError) as e:
            logger.debug("bootstrap peer %s: %s", peer or addrs[0], e)
            return None
        cand = Candidate(_id(peer), addrs, 0, 1)
        self._answered(cand)
        return peer

    def is_bootstrapped(self) -> bool:
        return self.table.size() > 0

    def remove_handler(self) -> None:
        try:
            self.host.remove_stream_handler(PROTOCOL_ID)
        except Exception:
            pass
