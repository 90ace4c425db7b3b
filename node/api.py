"""The ``Node``: one libp2p host that shares and receives, as the seed's
"Connection Flow" describes (``start_sharing`` / ``start_receiving``).

The CLI is a thin layer over this class. Discovery, relays and hole punching
(later issues) plug in behind ``_reach``: today a peer is reached at the
addresses its code carries, or at the legacy code's IP:PORT.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from functools import cached_property, partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import trio

from p2pshare import sharecode
from p2pshare.node import _gc
from p2pshare.node._memory import trim_forever
from p2pshare.node.autonat._trio_server import serve_autonat_server
from p2pshare.node.autonat.server import ServerConfig as AutoNATServerConfig
from p2pshare.node.autorelay import AutoRelay
from p2pshare.node.circuit.client import RelayClient, RelayError, open_relay_client
from p2pshare.node.community import serve_community_relay
from p2pshare.node.dcutr.policy import PunchConfig
from p2pshare.node.discovery import Discovery, open_discovery, remembers_peers
from p2pshare.node.errors import LocalNodeError
from p2pshare.node.events import (
    AddressesChanged,
    Connected,
    NodeEvent,
    PathUpgraded,
    ReachabilityChanged,
    RelaysChanged,
)
from p2pshare.node.host import Host, LibP2PByteStream, ListenError, open_host
from p2pshare.node.identity import node_identity
from p2pshare.node.mdns.lan import lan_dht, met_on_lan, serve_lan_dht
from p2pshare.node.mdns.service import Mdns, serve_mdns
from p2pshare.node.netwatch.service import serve_address_watch
from p2pshare.node.node_config import NodeConfig, ShareInfo
from p2pshare.node.preparation import SCAN_WAIT, Preparation, names_over_limit, prepare
from p2pshare.node.reach import Reacher
from p2pshare.node.receive.core import PROBE_WAIT, UPGRADE_WAIT, UPGRADE_WAIT_LIMITED, ReceiveResult
from p2pshare.node.receive.driver import ReceiveDriver, check_output_dir
from p2pshare.node.shortcode import PROTOCOL_ID as SHORTCODE_PROTOCOL
from p2pshare.node.shortcode import Offer, ShortCodeEvent
from p2pshare.node.shortcode._trio import advertise_short_code, claim_short_code, expire_offer, serve_attempt
from p2pshare.node.shortcode.search import RoundEnd
from p2pshare.node.traversal import Traversal, open_traversal
from p2pshare.sharecode.addresses import code_addresses
from p2pshare.sharecode.legacy import legacy_for
from p2pshare.sharecode.multiaddrs import is_loopback_addr, without_loopback
from p2pshare.sharecode.short import ShortCode, new_short_code, window_keys
from p2pshare.transfer import PROTOCOL_ID, ShareRegistry, serve_transfer, sessions_ended
from p2pshare.transfer.hashcache import cache_file
from p2pshare.transfer.registry import STOP_NOTICE_SECONDS
from p2pshare.transfer.scan import HashProgress, scan_paths
from p2pshare.transfer.store import Conflict

if TYPE_CHECKING:
    from p2pshare.transfer._trio_fetch import Approve, Destination

log = logging.getLogger(__name__)

RELAYS_WANTED = 2  # reservations a node holds (and names in its codes) at once
STOP_GRACE = STOP_NOTICE_SECONDS  # a stop waits as long as each session tries to tell its receiver

__all__ = [
    "Connected",
    "PathUpgraded",
    "Node",
    "NodeConfig",
    "ReceiveResult",
    "ShareInfo",
    "PROBE_WAIT",
    "UPGRADE_WAIT",
    "UPGRADE_WAIT_LIMITED",
]


class Node:
    """A started libp2p host with the transfer protocol mounted.

    Use ``async with Node(config) as node``: the host and every task the node
    starts live inside the ``async with`` and are gone when it exits.
    """

    def __init__(
        self, config: NodeConfig | None = None, *, on_event: Callable[[NodeEvent], None] | None = None
    ) -> None:
        self.config = config or NodeConfig()
        self.registry = ShareRegistry()
        # Every event of the node (transfers both ways, NAT traversal, the
        # receiver's connection, relay reservations); may be replaced any time.
        self.on_event = on_event
        self._stack = contextlib.AsyncExitStack()
        self._host: Host | None = None
        self._relay: RelayClient | None = None
        self._discovery: Discovery | None = None
        self._nursery: trio.Nursery | None = None
        self._traversal: Traversal | None = None
        self._reacher: Reacher | None = None
        self._autorelay: AutoRelay | None = None
        self._mdns: Mdns | None = None
        self._reachability_event = trio.Event()
        self._addrs_said: tuple[str, ...] | None = None  # addresses() when last told (None: not yet)
        self.identity_path: Path | None = None  # the identity file held (None: a throwaway key)

    # -- lifecycle -----------------------------------------------------------
    async def __aenter__(self) -> Node:
        cfg = self.config
        held = node_identity(cfg.identity_path, cfg.identity_fallbacks)  # held for the node's life
        self._stack.callback(held.release)
        self.identity_path, self._key_pair = held.path, (key_pair := held.key_pair)
        try:
            try:
                self._host = await self._stack.enter_async_context(open_host(key_pair, list(cfg.listen_addrs)))
            except OSError:
                if not cfg.fallback_listen_addrs:
                    raise
                self._host = await self._stack.enter_async_context(open_host(key_pair, list(cfg.fallback_listen_addrs)))
        except OSError as exc:
            await self._stack.aclose()
            if isinstance(exc, ListenError):  # already names each address and why
                raise LocalNodeError(str(exc)) from None
            raise LocalNodeError(f"cannot listen on {', '.join(cfg.listen_addrs)}: {exc.strerror or exc}") from None
        # The command line's start-up is over: its imports are done, and what
        # follows may wait on the network (a no-op outside the command line).
        _gc.settle()
        self._host.set_stream_handler(PROTOCOL_ID, self._handle_transfer)
        self._traversal = await self._stack.enter_async_context(
            open_traversal(
                self._host,
                relays=list(cfg.relays),
                autonat=cfg.autonat,
                on_event=self._emit,
                peers=list(cfg.bootstrap),  # identify tells our public mapping when no relay is configured
                punch=PunchConfig(punch_holes=not cfg.force_relay),  # forced: the bytes cross the relay
            )
        )
        try:
            self._relay = await self._stack.enter_async_context(
                open_relay_client(
                    self._host,
                    list(cfg.relays) if cfg.reserve else [],
                    want=RELAYS_WANTED,
                    on_change=self._relays_changed,
                )
            )
        except RelayError as exc:
            await self._stack.aclose()
            raise LocalNodeError(f"bad relay: {exc}") from None
        self._discovery = await self._stack.enter_async_context(
            open_discovery(
                self._host,
                bootstrap=list(cfg.bootstrap),
                peers_file=cfg.peers_file,
                server_mode=cfg.dht_server or lan_dht(cfg.mdns, bool(cfg.bootstrap)),
                addrs=self.addresses,
            )
        )
        self._reacher = Reacher(
            self._host, self._relay, self._discovery, force_relay=cfg.force_relay, use_dht=self.uses_dht
        )
        self._nursery = await self._stack.enter_async_context(trio.open_nursery())
        if cfg.autorelay:
            self._autorelay = AutoRelay(
                self._host,
                self._relay,
                self._discovery if self._reacher.use_dht else None,
                confirmed_public=self.confirmed_public,
                allow_loopback=_loopback_only(self._host.listen_addrs()),
                on_autonat_server=partial(self._traversal.add_autonat_server, avoid=self._holds_reservation),
            )
            await self._nursery.start(self._autorelay.serve)
        await self._nursery.start(
            partial(
                serve_community_relay,
                self._host,
                mode=cfg.relay_service,
                limits=cfg.relay_limits,
                private_key=key_pair.private_key,
                discovery=self._discovery if self._reacher.use_dht else None,
                is_public=self.confirmed_public,
                reachability_changed=self._reachability_changed,
                emit=self._emit,
            )
        )
        if cfg.autonat_server:
            # Every long-lived node answers others' AutoNAT dial-backs (with the
            # spec's protections: requester's own IP only, rate limits).
            await self._nursery.start(serve_autonat_server, self._host, AutoNATServerConfig())
        if cfg.mdns:
            self._mdns = await self._nursery.start(
                serve_mdns, self.host.peer_id, self.host.listen_addrs, partial(met_on_lan, self._discovery)
            )
            self._reacher.lan = self._mdns
            if not cfg.dht_server and not lan_dht(cfg.mdns, bool(cfg.bootstrap)):
                self._nursery.start_soon(serve_lan_dht, self._discovery, self.host, self._mdns)
        self._nursery.start_soon(trim_forever)  # a long-lived process gives freed heap back
        self._addrs_said = tuple(self.addresses())
        await self._nursery.start(serve_address_watch, self._interfaces_changed)
        # Background work (advertising) must not hold the node open: cancel it
        # first on exit (exit-stack callbacks run before the nursery's exit).
        self._stack.callback(self._nursery.cancel_scope.cancel)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    @property
    def host(self) -> Host:
        if self._host is None:
            raise RuntimeError("Node used outside its 'async with'")
        return self._host

    @property
    def peer_id(self) -> str:
        return self.host.peer_id

    @property
    def relay(self) -> RelayClient:
        if self._relay is None:
            raise RuntimeError("Node used outside its 'async with'")
        return self._relay

    def addresses(self) -> list[str]:
        """Dialable addresses a code can hold (``code_addresses``): public/LAN first, loopback, then relayed."""
        # Confirmed public: others reach us directly, and relayed addresses would only slow them.
        relayed = [] if self.confirmed_public() else without_loopback(self.relay.relayed_addrs())
        return code_addresses(without_loopback(sorted(self.host.listen_addrs())), relayed, self.peer_id)

    def confirmed_public(self) -> bool:
        """AutoNAT confirmed that others reach this node directly."""
        verdict = self._traversal.verdict if self._traversal is not None else None
        return verdict is not None and verdict.confirmed and verdict.reachability.value == "public"

    @property
    def mdns(self) -> Mdns | None:
        """Local discovery, when on and started."""
        return self._mdns

    def _holds_reservation(self, peer_id: str) -> bool:
        return any(r.relay_peer_id == peer_id for r in self.relay.reservations())

    def _relays_changed(self, addrs: list[str]) -> None:
        self.host.announce_also(addrs)  # identify and the peer record carry them too
        self._emit(RelaysChanged(tuple(addrs)))
        if self._discovery is not None:
            self._discovery.addresses_changed()  # DHT records carry the new circuit addresses
        self._tell_addresses()

    def _interfaces_changed(self) -> None:
        """The kernel says an interface address came or went (a laptop on
        another network, a new DHCP lease): if that changed our dialable
        addresses, say so, re-advertise the shares in the DHT with them
        (paced by discovery), so a receiver looking the sharer up finds
        where it is now, not where it was, and have AutoNAT check again."""
        if not self._tell_addresses():
            return
        if self._discovery is not None:
            self._discovery.addresses_changed()
        if self._traversal is not None:
            self._traversal.interfaces_changed()  # reachability may differ there too

    def _tell_addresses(self) -> bool:
        """Emit :class:`AddressesChanged` if :meth:`addresses` differs from
        the last list told; True if it did. Quiet until the node is up."""
        if self._addrs_said is None:
            return False
        now = tuple(self.addresses())
        if now == self._addrs_said:
            return False
        self._addrs_said = now
        self._emit(AddressesChanged(now))
        return True

    @property
    def traversal(self) -> Traversal:
        if self._traversal is None:
            raise RuntimeError("Node used outside its 'async with'")
        return self._traversal

    def _emit(self, event: NodeEvent) -> None:
        if isinstance(event, ReachabilityChanged):
            self._reachability_event.set()
            self._reachability_event = trio.Event()
        if self.on_event is not None:
            self.on_event(event)
        if isinstance(event, ReachabilityChanged):
            self._tell_addresses()  # confirmed public: relayed addresses leave the list

    async def _reachability_changed(self) -> None:
        """Until AutoNAT's verdict next changes."""
        await self._reachability_event.wait()

    @property
    def discovery(self) -> Discovery:
        if self._discovery is None:
            raise RuntimeError("Node used outside its 'async with'")
        return self._discovery

    async def wait_relays(self, timeout: float = 10.0, all_grace: float = 2.0) -> bool:
        """With relays configured, wait (bounded) for a first reservation, then
        briefly for the others, so a code names every relay that will carry it."""
        if not self.config.relays:
            return True
        if not await self.relay.wait_reserved(timeout, unless_failing=True):
            return False
        want = min(len(self.config.relays), RELAYS_WANTED)
        await self.relay.wait_reserved(all_grace, count=want)
        return True

    # -- sharing -------------------------------------------------------------
    async def start_sharing(
        self,
        name: str | None,
        description: str | None,
        files: Sequence[Path],
        sharer_name: str | None = None,
        *,
        key: bytes | None = None,
        human_code: str | None = None,
        hash_cache: Path | None = None,
        scan_wait: float = SCAN_WAIT,
    ) -> ShareInfo:
        """Register the share and return its codes at once.

        Listing and hashing go on in the background (``ShareInfo.preparation``):
        the code depends on neither, and receivers that come early are told
        how far it got. A listing that ends within ``scan_wait`` seconds
        (every tree of ordinary size) fails here, before a code exists, if
        an input is bad. ``hash_cache``: a directory of hash caches, so
        re-sharing unchanged files needs no hashing."""
        key = key if key is not None else secrets.token_bytes(32)
        human_code = human_code or sharecode.new_human_code()
        paths = tuple(Path(f) for f in files)
        share_name = name or (paths[0].name if len(paths) == 1 else "shared files")
        prep = Preparation(paths, HashProgress(0))
        if await trio.to_thread.run_sync(names_over_limit, paths):
            # Too many entries, unless the scan skips enough of them: its
            # verdict (and exact counts) before a code, as for any tree.
            prep.scan = await trio.to_thread.run_sync(scan_paths, paths)
        share_id = self.registry.add_pending(key, human_code, prep.progress)
        assert self._nursery is not None
        self._nursery.start_soon(
            partial(
                prepare,
                prep,
                self.registry,
                key=key,
                human_code=human_code,
                name=share_name,
                description=description or "",
                sharer=sharer_name or "",
                cache=cache_file(hash_cache, paths) if hash_cache is not None else None,
            )
        )
        with trio.move_on_after(scan_wait):
            await prep.scanned.wait()
        if prep.error is not None and prep.scan is None:
            self.registry.remove(share_id)
            raise prep.error
        if not await self.wait_relays():
            log.warning("no relay reservation yet; the code carries direct addresses only")
        addrs = tuple(self.addresses())
        code = sharecode.ShareCode(peer_id=self.peer_id, addresses=addrs, encryption_key=key, share_code=human_code)
        legacy = legacy_for(human_code, key, addrs)
        assert self._nursery is not None
        self._nursery.start_soon(self._advertise, share_id, sharecode.dht_key(human_code))
        return ShareInfo(code=code, legacy=legacy, preparation=prep, share_id=share_id)

    async def stop_sharing(self, info: ShareInfo, grace: float = STOP_GRACE) -> None:
        """Withdraw the share; each receiver that proved the key hears
        ERROR STOPPED (it ends at once instead of retrying until its
        ``--timeout``). Returns when they all read it, or after ``grace``."""
        info.preparation.progress.stop = True  # hashing still under way stops too
        self.registry.remove(info.share_id)
        self.discovery.withdraw(sharecode.dht_key(info.code.share_code))
        with trio.move_on_after(grace):
            await sessions_ended(self.registry, info.share_id)

    async def _advertise(self, share_id: bytes, key: bytes) -> None:
        """Put a provider record in the DHT (only the hashed key; re-advertised by discovery)."""
        if not self.uses_dht:
            return
        if self.registry.withdrawn(share_id):
            return  # stopped before this task ran: advertising now would last for ever
        # advertise() waits for the table itself, after recording us as a
        # provider locally: a LAN peer that asks us first finds the share.
        try:
            await self.discovery.advertise(key, timeout=60.0)
        except Exception as exc:  # noqa: BLE001 - discovery is best effort; direct codes still work
            log.warning("could not advertise the share in the DHT: %s", exc)

    async def _handle_transfer(self, stream: LibP2PByteStream) -> None:
        await serve_transfer(
            stream,
            registry=self.registry,
            local_peer_id=self.host.peer_id_bytes,
            remote_peer_id=stream.remote_peer_id_bytes,
            on_event=self._emit,
            remote_source=stream.connection.source_group(),
        )

    # -- short codes ---------------------------------------------------------
    @cached_property
    def uses_dht(self) -> bool:
        """Short codes are found only through the DHT: bootstrap nodes, peers
        the peers file remembers (an empty one is no DHT; read once), or mDNS."""
        return bool(self.config.bootstrap) or self.config.mdns or remembers_peers(self.config.peers_file)

    def offer_short_code(
        self,
        info: ShareInfo,
        *,
        tries: int,
        ttl: float,
        on_event: Callable[[ShortCodeEvent], None],
        code: ShortCode | None = None,
    ) -> Offer:
        """Give ``info`` a short code (fresh unless ``code``: tests force
        colliding numbers), advertised under its number for ``ttl`` seconds
        and refused after ``tries`` failed attempts (one short code per
        node: a new offer replaces the old)."""
        if not self.uses_dht:
            raise LocalNodeError("short codes are found through the DHT: give --bootstrap (or keep the defaults)")
        code = code or new_short_code()
        offer = Offer(code, info.encode().encode(), tries, trio.current_time() + ttl)
        now = time.time()
        keys = window_keys(code.number, now, now + ttl)

        def payload() -> bytes:
            return dataclasses.replace(info.code, addresses=tuple(self.addresses())).encode().encode()

        self.host.set_stream_handler(SHORTCODE_PROTOCOL, partial(serve_attempt, self.host, offer, payload, on_event))
        assert self._nursery is not None
        self._nursery.start_soon(advertise_short_code, self.discovery, keys, on_event, offer.expires_at)
        self._nursery.start_soon(expire_offer, offer, self.discovery, keys, on_event)
        return offer

    async def resolve_short_code(
        self, code: ShortCode, *, timeout: float, on_retry: Callable[[RoundEnd, float], None] | None = None
    ) -> sharecode.ShareCode:
        """The full code behind ``code`` (``claim_short_code``)."""
        if not self.uses_dht:
            raise LocalNodeError("short codes are found through the DHT: give --bootstrap (or keep the defaults)")
        assert self._reacher is not None
        reacher, discovery = self._reacher, self.discovery
        return await claim_short_code(self.host, reacher, discovery, code, timeout=timeout, on_retry=on_retry)

    # -- receiving -----------------------------------------------------------
    async def start_receiving(
        self,
        code: str | sharecode.ShareCode | sharecode.LegacyCode,
        output_dir: Path,
        receiver_name: str | None = None,
        *,
        timeout: float = 60.0,
        approve: Approve | None = None,
        conflict: Conflict = Conflict.REFUSE,
        destination: Destination | None = None,
    ) -> ReceiveResult:
        """Reach the sharer, then fetch into ``output_dir``, resuming what is there.

        A connection that drops mid-transfer is re-dialled until ``timeout``
        seconds pass without progress; what was verified is kept either way.
        Files the sharer stopped serving (changed on its side) end it with
        ``FilesUnavailableError`` naming them, once every other file arrived.
        Events (``Connected``, ``PathUpgraded``, the transfer's) go to
        ``on_event``. ``approve`` sees each verified manifest before anything
        is written and may refuse it (raising); the deadline waits for it.
        ``destination`` may pick another directory from the verified manifest
        (see ``transfer.fetch``). The decisions live in :mod:`p2pshare.node.receive.core`.
        """
        parsed = sharecode.parse_code(code) if isinstance(code, str) else code
        check_output_dir(output_dir)
        assert self._reacher is not None
        driver = ReceiveDriver(
            host=self.host, relay=self.relay, traversal=self.traversal, reacher=self._reacher, emit=self._emit
        )
        return await driver.run(parsed, output_dir, timeout, approve, conflict, destination)


def _loopback_only(addrs: Sequence[str]) -> bool:
    """A node listening on loopback only (tests, demos) can only meet peers on this host."""
    return bool(addrs) and all(is_loopback_addr(a) for a in addrs)
