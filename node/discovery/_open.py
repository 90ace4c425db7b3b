"""``open_discovery``: the DHT on a host, its background loops, its peers file."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from p2pshare.node import _libp2p_records as records
from p2pshare.node.host import Host
from p2pshare.sharecode.multiaddrs import trailing_peer

from ._rpc import PROTOCOL_ID as KAD_PROTOCOL_ID
from .dnsaddr import TxtLookup, resolve_bootstrap
from .lookup import STALE_AFTER, rejoin_needed, stale_to_drop
from .peers import normalize_addr
from .peers_file import load_peers_file, merge_remembered, save_peers_file
from .service import Discovery, Target

__all__ = ["open_discovery", "DEFAULT_ADVERTISE_INTERVAL", "DEFAULT_REFRESH_INTERVAL"]

if TYPE_CHECKING:
    from trio_typing import TaskStatus  # trio's own name is hidden by trio-stubs

logger = logging.getLogger(__name__)

# Re-advertise every hour. Records live 48 h at go/js/py servers and those
# re-provide every 22 h; we go much faster because a share's k closest
# holders change with churn (a small p2pshare overlay, laptops in server
# mode) and each round refreshes the addresses in the record after the
# sharer moved. Cost: one lookup and <= 20 small messages per share and hour.
DEFAULT_ADVERTISE_INTERVAL = 3600.0
# Routing-table refresh (self-lookup), every 10 min as the spec recommends.
DEFAULT_REFRESH_INTERVAL = 600.0
_RPC_TIMEOUT = 5.0
_DNS_TIMEOUT = 10.0
_BOOTSTRAP_ROUNDS = 3
_BOOTSTRAP_BACKOFF = (1.0, 4.0)
_BOOTSTRAP_PARALLEL = 8
_SELF_LOOKUP_TIMEOUT = 30.0
_SAVE_TIMEOUT = 2.0


def quiet_kad_logs() -> None:
    """Keep py-libp2p's Kademlia chatter off the user's terminal.

    Its inbound handler logs WARNING "Failed to read DHT message" on every
    normal end of stream, and ERROR for stale peer records or peers that
    vanish mid-answer: none is actionable. ``LIBP2P_DEBUG`` keeps them.
    """
    if not os.environ.get("LIBP2P_DEBUG"):
        logging.getLogger("libp2p.kad_dht").setLevel(logging.CRITICAL)


def _targets(addrs: Sequence[str]) -> list[Target]:
    """Group full multiaddrs by their ``/p2p/<id>``; bare ones keep ``None``."""
    by_peer: dict[str, list[str]] = {}
    bare: list[Target] = []
    for addr in addrs:
        peer = trailing_peer(addr)
        if peer is not None:
            norm = normalize_addr(addr, peer)
            if norm:
                by_peer.setdefault(peer, []).append(norm)
        elif addr.startswith("/"):
            bare.append(Target(None, (addr,)))
    return [Target(p, tuple(a)) for p, a in by_peer.items()] + bare


async def _bootstrap(disc: Discovery, targets: list[Target], *, quiet: bool = False) -> bool:
    """Probe targets in parallel, a few rounds; True once one of them answered.
    ``quiet``: this outage was already reported; its retries go to ``-v`` only.

    A peer that dialled us also lands in the table, so a non-empty table
    does not mean we joined: a node whose bootstrap peer was not up yet
    when a neighbour reached it would otherwise stop trying and stay cut
    off from the network behind that peer.
    """
    if not targets:
        return disc.is_bootstrapped()
    limiter = trio.CapacityLimiter(_BOOTSTRAP_PARALLEL)

    async def one(t: Target, answered: list[str]) -> None:
        async with limiter:
            peer = await disc.probe(t)
        if peer is not None:
            answered.append(peer)

    for round_no in range(_BOOTSTRAP_ROUNDS):
        answered: list[str] = []
        async with trio.open_nursery() as nursery:
            for t in targets:
                nursery.start_soon(one, t, answered)
        if answered:
            await disc.wait_in_table(answered, 1.0)
            return True
        if round_no < len(_BOOTSTRAP_BACKOFF):
            await trio.sleep(_BOOTSTRAP_BACKOFF[round_no])
    log = logger.info if quiet else logger.warning
    log("could not reach any of %d DHT bootstrap peers; retrying in the background", len(targets))
    return False


def _save(disc: Discovery, path: Path) -> None:
    try:
        merged = merge_remembered(load_peers_file(path), disc.good_peers(), now=time.time())
        if merged:
            save_peers_file(path, merged)
    except OSError as e:
        logger.warning("cannot write peers file %s: %s", path, e.strerror or e)


_SELF_ADDR_TTL = 3 * 3600
#: Seconds between two checks of the routing table for peers long gone.
TABLE_PRUNE_EVERY = 600.0


def prune_stale(disc: Discovery) -> int:
    """Forget routing-table peers long gone (``lookup.stale_to_drop``); how many."""
    ages = disc.table.ages(STALE_AFTER)
    drop = stale_to_drop(ages, disc.host.is_connected, lambda p: bool(disc.host.peer_addrs(p)), disc.table.size())
    for peer in drop:
        disc.table.remove(records.peer_id_to_bytes(peer))  # base58 from our own table: valid
    if drop:
        logger.debug("dht: dropped %d routing-table peers long gone", len(drop))
    return len(drop)


async def _prune_stale_forever(disc: Discovery) -> None:
    while True:
        await trio.sleep(TABLE_PRUNE_EVERY)
        prune_stale(disc)


def _publish_self_addrs(disc: Discovery) -> None:
    """py-libp2p answers FIND_NODE for itself from its peerstore, which lacks
    our own addresses: a peer (js findPeer) would take an address-less answer.
    Keep our advertised addresses in our own peerstore entry."""
    try:
        disc.host.set_own_addrs(disc.my_addrs(), _SELF_ADDR_TTL)
    except Exception as e:  # noqa: BLE001 - best effort; lookups do not depend on it
        logger.debug("cannot publish our addresses in our peerstore: %s", e)


async def _serve_routing(
    disc: Discovery,
    bootstrap: Sequence[str],
    peers_file: Path | None,
    refresh_interval: float | None,
    dns_lookup: TxtLookup | None,
    *,
    task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Bootstrap, then refresh the table (self-lookup) and save the peers file."""
    task_status.started()
    addrs = await resolve_bootstrap(bootstrap, timeout=_DNS_TIMEOUT, lookup=dns_lookup)
    remembered: list[Target] = []
    if peers_file is not None:
        loaded = await trio.to_thread.run_sync(load_peers_file, peers_file)
        remembered = [Target(p.peer_id, p.addrs) for p in loaded if p.peer_id != disc.peer_id]
    targets = _targets(addrs) + remembered
    joined = await _bootstrap(disc, targets)
    while True:
        _publish_self_addrs(disc)
        try:
            if refresh_interval is not None:
                if not joined or not disc.is_bootstrapped():
                    joined = await _bootstrap(disc, targets, quiet=not joined)  # an outage is said once
                if disc.is_bootstrapped():
                    await disc.closest_peers(disc.host.peer_id_bytes, timeout=_SELF_LOOKUP_TIMEOUT)
                    if rejoin_needed(disc.table.size(), disc.last_lookup):  # nobody in the table answers
                        joined = await _bootstrap(disc, targets)
            if peers_file is not None:
                await trio.to_thread.run_sync(_save, disc, peers_file)
            disc.table.cleanup_expired()
        except Exception as e:  # a bug here must not take the node down
            logger.warning("DHT maintenance failed: %s: %s", type(e).__name__, e)
            logger.debug("traceback", exc_info=True)
        await trio.sleep(refresh_interval if refresh_interval is not None else 300.0)


@asynccontextmanager
async def open_discovery(
    host: Host,
    *,
    bootstrap: Sequence[str],
    peers_file: Path | None,
    server_mode: bool,
    advertise_interval: float = DEFAULT_ADVERTISE_INTERVAL,
    refresh_interval: float | None = DEFAULT_REFRESH_INTERVAL,
    addrs: Callable[[], Sequence[str]] | None = None,
    rpc_timeout: float = _RPC_TIMEOUT,
    dns_lookup: TxtLookup | None = None,
) -> AsyncIterator[Discovery]:
    """Run Kademlia discovery on ``host`` until the block exits.

    ``bootstrap``: full multiaddrs (``/p2p/<id>`` optional; ``/dnsaddr``
    resolved when possible); with ``peers_file`` the peers remembered from
    earlier runs are tried too, and the file is updated. Bootstrapping runs
    in the background: see :meth:`Discovery.wait_bootstrapped`.
    ``server_mode``: answer other peers' Kademlia RPCs (reachable nodes
    only). ``addrs``: the addresses to advertise (default: the host's
    listen addresses; a NATed node should pass its relay addresses).
    ``refresh_interval=None`` skips the self-lookup and periodic refresh,
    leaving the table to what bootstrap and queries fill in (tests of a
    fixed topology).
    """
    if advertise_interval <= 0 or (refresh_interval is not None and refresh_interval <= 0):
        raise ValueError("intervals must be positive")
    quiet_kad_logs()
    # Records are refused (no namespace is registered); inbound RPCs add
    # only Kademlia servers to the table (an instance patch, see
    # node/_libp2p_patches.py: kad_servers_only).
    table = host.new_kad_dht(server_mode=server_mode, protocol=KAD_PROTOCOL_ID)
    disc = Discovery(
        host,
        table,
        advertise_interval=advertise_interval,
        rpc_timeout=rpc_timeout,
        addrs=addrs or host.listen_addrs,
    )
    _publish_self_addrs(disc)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(disc.serve_table_updates)
            await nursery.start(disc.serve_advertising)

            async def serve_routing(*, task_status: TaskStatus[None]) -> None:
                await _serve_routing(
                    disc,
                    list(bootstrap),
                    peers_file,
                    refresh_interval,
                    dns_lookup,
                    task_status=task_status,
                )

            await nursery.start(serve_routing)
            nursery.start_soon(_prune_stale_forever, disc)
            yield disc
            nursery.cancel_scope.cancel()
    finally:
        disc.remove_handler()
        if peers_file is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(_SAVE_TIMEOUT):
                await trio.to_thread.run_sync(_save, disc, peers_file)
