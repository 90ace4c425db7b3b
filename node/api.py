"""The ``Node``: one libp2p host that shares and receives, as the seed's
"Connection Flow" describes (``start_sharing`` / ``start_receiving``).

The CLI is a thin layer over this class. Discovery, relays and hole punching
(later issues) plug in behind ``_reach``: today a peer is reached at the
addresses its code carries, or at the legacy code's IP:PORT.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import trio

from p2pshare import sharecode
from p2pshare.node.autonat._trio_server import serve_autonat_server
from p2pshare.node.autonat.client import AutoNATConfig
from p2pshare.node.autonat.server import ServerConfig as AutoNATServerConfig
from p2pshare.node.circuit.client import RelayClient, RelayError, open_relay_client
from p2pshare.node.circuit.wire import Limit
from p2pshare.node.discovery import Discovery, open_discovery
from p2pshare.node.errors import LocalNodeError, PeerUnreachableError, RelayLimitedError
from p2pshare.node.host import Host, LibP2PByteStream, open_host
from p2pshare.node.identity import load_or_create_identity
from p2pshare.node.ping import PING_PROTOCOL, measure_rtt
from p2pshare.node.reach import Reacher
from p2pshare.node.traversal import Traversal, TraversalEvent, open_traversal
from p2pshare.transfer import PROTOCOL_ID, PreparedShare, ShareRegistry, build_manifest, fetch, serve_transfer
from p2pshare.transfer.errors import TransferError
from p2pshare.transfer.events import Progress

log = logging.getLogger(__name__)

DEFAULT_LISTEN = ("/ip4/0.0.0.0/tcp/0",)
RELAYS_WANTED = 2  # reservations a node holds (and names in its codes) at once
PROBE_WAIT = 3.0  # seconds a receiver spends learning its NAT mapping from the code's relays
UPGRADE_WAIT = 4.0  # seconds a relayed receiver waits for hole punching before it starts (failures end it early; a later upgrade still moves the transfer)
UPGRADE_WAIT_LIMITED = 15.0  # ... when the relay limits the circuit (it cannot carry the data)


@dataclass(frozen=True)
class Connected:
    """The receiver reached the sharer."""

    peer_id: str
    path: str  # "direct" | "relayed" | "hole-punched"
    rtt_ms: float | None


@dataclass(frozen=True)
class PathUpgraded:
    """A relayed connection to the sharer became direct."""

    peer_id: str
    path: str  # "hole-punched" | "direct"
    seconds: float  # from the relayed connection to the direct one


@dataclass(frozen=True)
class ShareInfo:
    """What ``start_sharing`` returns: the codes to hand out and the share itself."""

    code: sharecode.ShareCode
    legacy: sharecode.LegacyCode | None
    prepared: PreparedShare
    share_id: bytes
    warnings: tuple[str, ...] = ()

    def encode(self) -> str:
        return self.code.encode()


@dataclass
class NodeConfig:
    """How a node starts. ``identity_path`` None means a fresh throwaway key."""

    identity_path: Path | None = None
    listen_addrs: Sequence[str] = DEFAULT_LISTEN
    fallback_listen_addrs: Sequence[str] | None = None
    relays: Sequence[str] = ()
    force_relay: bool = False  # receivers: dial only through relays (tests, benchmarks)
    bootstrap: Sequence[str] = ()
    peers_file: Path | None = None
    dht_server: bool = False  # answer others' DHT queries (publicly reachable nodes only)
    autonat: AutoNATConfig | None = None  # check reachability against the relays
    autonat_server: bool = False  # serve AutoNAT dial-backs for others (long-lived nodes)
    extra: dict[str, Any] = field(default_factory=dict)


class Node:
    """A started libp2p host with the transfer protocol mounted.

    Use ``async with Node(config) as node``: the host and every task the node
    starts live inside the ``async with`` and are gone when it exits.
    """

    def __init__(self, config: NodeConfig | None = None) -> None:
        self.config = config or NodeConfig()
        self.registry = ShareRegistry()
        self.on_transfer_event: Callable[[object], None] | None = None
        self._stack = contextlib.AsyncExitStack()
        self._host: Host | None = None
        self._relay: RelayClient | None = None
        self._discovery: Discovery | None = None
        self._nursery: trio.Nursery | None = None
        self.advertised: dict[bytes, int] = {}  # share_id -> DHT peers that took the record
        self.on_traversal_event: Callable[[TraversalEvent], None] | None = None
        self._traversal: Traversal | None = None
        self._reacher: Reacher | None = None

    # -- lifecycle -----------------------------------------------------------
    async def __aenter__(self) -> Node:
        cfg = self.config
        if cfg.identity_path is not None:
            key_pair = load_or_create_identity(cfg.identity_path)
        else:
            from p2pshare.node.identity import generate_identity

            key_pair = generate_identity()
        try:
            try:
                self._host = await self._stack.enter_async_context(open_host(key_pair, list(cfg.listen_addrs)))
            except OSError:
                if not cfg.fallback_listen_addrs:
                    raise
                self._host = await self._stack.enter_async_context(open_host(key_pair, list(cfg.fallback_listen_addrs)))
        except OSError as exc:
            await self._stack.aclose()
            raise LocalNodeError(f"cannot listen on {', '.join(cfg.listen_addrs)}: {exc.strerror or exc}") from None
        self._host.set_stream_handler(PROTOCOL_ID, self._handle_transfer)
        self._traversal = await self._stack.enter_async_context(
            open_traversal(
                self._host,
                relays=list(cfg.relays),
                autonat=cfg.autonat,
                on_event=self._on_traversal_event,
            )
        )
        try:
            self._relay = await self._stack.enter_async_context(
                open_relay_client(self._host, list(cfg.relays), want=RELAYS_WANTED)
            )
        except RelayError as exc:
            await self._stack.aclose()
            raise LocalNodeError(f"bad relay: {exc}") from None
        self._discovery = await self._stack.enter_async_context(
            open_discovery(
                self._host,
                bootstrap=list(cfg.bootstrap),
                peers_file=cfg.peers_file,
                server_mode=cfg.dht_server,
                addrs=self.addresses,
            )
        )
        self._reacher = Reacher(
            self._host,
            self._relay,
            self._discovery,
            force_relay=cfg.force_relay,
            use_dht=bool(cfg.bootstrap) or cfg.peers_file is not None,
        )
        self._nursery = await self._stack.enter_async_context(trio.open_nursery())
        if cfg.autonat_server:
            # Every long-lived node answers others' AutoNAT dial-backs (with the
            # spec's protections: requester's own IP only, rate limits).
            await self._nursery.start(serve_autonat_server, self._host, AutoNATServerConfig())
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
        """Dialable addresses: public/LAN first, loopback, then relayed ones."""
        addrs = _without_loopback(sorted(self.host.listen_addrs()))
        verdict = self._traversal.verdict if self._traversal is not None else None
        if verdict is not None and verdict.confirmed and verdict.reachability.value == "public":
            return addrs  # AutoNAT: others reach us directly; relayed addresses would only slow them
        return addrs + _without_loopback(self.relay.relayed_addrs())

    @property
    def traversal(self) -> Traversal:
        if self._traversal is None:
            raise RuntimeError("Node used outside its 'async with'")
        return self._traversal

    def _on_traversal_event(self, event: TraversalEvent) -> None:
        if self.on_traversal_event is not None:
            self.on_traversal_event(event)

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
        if not await self.relay.wait_reserved(timeout):
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
    ) -> ShareInfo:
        """Hash the files, register the share and return its codes."""
        key = key if key is not None else secrets.token_bytes(32)
        human_code = human_code or sharecode.new_human_code()
        paths = [Path(f) for f in files]
        share_name = name or (paths[0].name if len(paths) == 1 else "shared files")
        prepared = await trio.to_thread.run_sync(
            lambda: build_manifest(
                paths, key=key, name=share_name, description=description or "", sharer=sharer_name or ""
            )
        )
        share_id = self.registry.add(prepared, key, human_code)
        if not await self.wait_relays():
            log.warning("no relay reservation yet; the code carries direct addresses only")
        addrs = tuple(self.addresses())
        code = sharecode.ShareCode(peer_id=self.peer_id, addresses=addrs, encryption_key=key, share_code=human_code)
        legacy = _legacy_for(human_code, key, addrs)
        assert self._nursery is not None
        self._nursery.start_soon(self._advertise, share_id, sharecode.dht_key(human_code))
        return ShareInfo(
            code=code, legacy=legacy, prepared=prepared, share_id=share_id, warnings=tuple(prepared.warnings)
        )

    def stop_sharing(self, info: ShareInfo) -> None:
        self.registry.remove(info.share_id)
        self.discovery.withdraw(sharecode.dht_key(info.code.share_code))

    async def _advertise(self, share_id: bytes, key: bytes) -> None:
        """Put a provider record in the DHT (only the hashed key; re-advertised by discovery)."""
        if not self.config.bootstrap and self.config.peers_file is None:
            return
        await self.discovery.wait_bootstrapped(30)
        try:
            self.advertised[share_id] = await self.discovery.advertise(key)
        except Exception as exc:  # noqa: BLE001 - discovery is best effort; direct codes still work
            log.warning("could not advertise the share in the DHT: %s", exc)

    async def _handle_transfer(self, stream: LibP2PByteStream) -> None:
        await serve_transfer(
            stream,
            registry=self.registry,
            local_peer_id=self.host.peer_id_bytes,
            remote_peer_id=stream.remote_peer_id_bytes,
            on_event=self.on_transfer_event,
        )

    # -- receiving -----------------------------------------------------------
    async def start_receiving(
        self,
        code: str | sharecode.ShareCode | sharecode.LegacyCode,
        output_dir: Path,
        receiver_name: str | None = None,
        *,
        timeout: float = 60.0,
        on_event: Callable[[object], None] | None = None,
    ) -> Any:
        """Reach the sharer, then fetch into ``output_dir``, resuming what is there.

        A connection that drops mid-transfer is re-dialled until ``timeout``
        seconds pass without progress; what was verified is kept either way.
        """
        parsed = sharecode.parse_code(code) if isinstance(code, str) else code
        emit = on_event or (lambda _e: None)
        _check_output_dir(output_dir)
        deadline = trio.current_time() + timeout
        last_error: Exception | None = None
        assert self._reacher is not None
        await self._learn_mapping(parsed)
        for _attempt in range(10_000):
            peer_id = await self._reacher.reach_until(parsed, deadline, last_error)
            path = self._path(peer_id)
            emit(Connected(peer_id=peer_id, path=path, rtt_ms=await self._rtt(peer_id)))
            if path == "relayed":
                path = await self._settle_path(peer_id, emit, deadline)
            limit = self.relay.circuit_limit(peer_id) if path == "relayed" else None
            progressed = False

            def track(event: object) -> None:
                nonlocal progressed
                progressed = progressed or isinstance(event, Progress)
                emit(event)

            try:
                stream = await self.host.open_stream(peer_id, PROTOCOL_ID)
            except (OSError, ConnectionError) as exc:
                last_error = exc
                await trio.sleep(0.2)
                continue
            switched = False
            new_path: str | None = None
            upgrade_took = 0.0
            try:
                async with trio.open_nursery() as nursery:
                    if path == "relayed":
                        # Hole punching that succeeds mid-transfer moves the rest
                        # of the transfer to the direct connection: verified data
                        # is kept, so the new stream fetches only what is missing.
                        async def watch_upgrade() -> None:
                            nonlocal switched, new_path, upgrade_took
                            started = trio.current_time()
                            new_path = await self.traversal.wait_direct(peer_id, float("inf"), until_failure=False)  # noqa: B023 - awaited within this iteration
                            if new_path is not None:
                                switched = True
                                upgrade_took = trio.current_time() - started
                                nursery.cancel_scope.cancel()

                        nursery.start_soon(watch_upgrade)
                    # Caught here, not around the nursery: trio would wrap it in a group.
                    failure: TransferError | None = None
                    try:
                        result = await fetch(
                            stream,
                            key=parsed.encryption_key,
                            share_code=parsed.share_code,
                            output_dir=output_dir,
                            local_peer_id=self.host.peer_id_bytes,
                            remote_peer_id=stream.remote_peer_id_bytes,
                            on_event=track,
                        )
                    except TransferError as exc:
                        failure = exc
                    nursery.cancel_scope.cancel()
                if failure is not None:
                    raise failure
                if not switched:
                    return result
                emit(PathUpgraded(peer_id, new_path or "direct", round(upgrade_took, 3)))
                continue
            except TransferError as exc:
                if not exc.retryable:
                    raise
                if limit is not None and self.traversal.upgrade(peer_id) is None:
                    raise RelayLimitedError(_limited_message(limit)) from None
                last_error = exc
                log.info("transfer interrupted (%s); reconnecting", exc)
                if progressed:
                    deadline = trio.current_time() + timeout
            finally:
                with contextlib.suppress(Exception):
                    await stream.reset()
            await trio.sleep(0.2)
        raise PeerUnreachableError("gave up after too many reconnects; run the same command again to resume")

    async def _learn_mapping(self, parsed: sharecode.ShareCode | sharecode.LegacyCode) -> None:
        """Before dialling through the relays a code names, learn our listen
        port's public mapping from them, so hole punching can announce it."""
        if not isinstance(parsed, sharecode.ShareCode) or self.traversal.nat is not None:
            return
        circuits = [a.split("/p2p-circuit")[0] for a in parsed.addresses if "/p2p-circuit" in a]
        if circuits:
            with trio.move_on_after(PROBE_WAIT):
                await self.traversal.probe(circuits)

    def _path(self, peer_id: str) -> str:
        path = self.host.connection_path(peer_id) or "direct"
        up = self.traversal.upgrade(peer_id)
        return "hole-punched" if path == "direct" and up is not None and up.method == "hole-punch" else path

    async def _settle_path(self, peer_id: str, emit: Callable[[object], None], deadline: float) -> str:
        """On a relayed connection give hole punching a moment before the
        transfer starts (longer when the relay's limits cannot carry it),
        never past the caller's deadline."""
        limited = self.relay.circuit_limit(peer_id) is not None
        wait = min(UPGRADE_WAIT_LIMITED if limited else UPGRADE_WAIT, max(0.0, deadline - trio.current_time()))
        started = trio.current_time()
        path = await self.traversal.wait_direct(peer_id, wait)
        if path is None:
            return "relayed"
        emit(PathUpgraded(peer_id, path, round(trio.current_time() - started, 3)))
        return path

    async def _rtt(self, peer_id: str) -> float | None:
        with trio.move_on_after(2):
            try:
                stream = await self.host.open_stream(peer_id, PING_PROTOCOL)
                try:
                    return round(await measure_rtt(stream), 3)
                finally:
                    with contextlib.suppress(Exception):
                        await stream.reset()
            except Exception:  # noqa: BLE001 - RTT is informative only
                return None
        return None


def _is_loopback(addr: str) -> bool:
    return addr.startswith(("/ip4/127.", "/ip6/::1/"))


def _without_loopback(addrs: list[str]) -> list[str]:
    """Loopback addresses only help on this machine: keep them only when
    there is nothing else (all-local tests and demos)."""
    others = [a for a in addrs if not _is_loopback(a)]
    return others or addrs


def _limited_message(limit: Limit) -> str:
    caps = []
    if limit.data:
        caps.append(f"{limit.data} bytes")
    if limit.duration:
        caps.append(f"{limit.duration} s")
    return (
        f"the relay cut the connection: it limits each relayed connection to {' / '.join(caps)}, "
        "and no direct path (hole punching) could be made; the data received so far is kept — "
        "ask the sharer to use a relay without such limits (e.g. `p2pshare relay`)"
    )


def _legacy_for(human_code: str, key: bytes, addrs: Sequence[str]) -> sharecode.LegacyCode | None:
    """A legacy code needs one plain IP:PORT; prefer a non-loopback IPv4."""
    candidates: list[tuple[str, int]] = []
    for addr in addrs:
        parts = addr.strip("/").split("/")
        if len(parts) >= 4 and parts[0] in ("ip4", "ip6") and parts[2] == "tcp" and "p2p-circuit" not in parts:
            candidates.append((parts[1], int(parts[3])))
    if not candidates:
        return None
    candidates.sort(key=lambda hp: (hp[0].startswith("127.") or hp[0] == "::1", ":" in hp[0]))
    host, port = candidates[0]
    return sharecode.LegacyCode(share_code=human_code, encryption_key=key, host=host, port=port)


def _check_output_dir(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LocalNodeError(f"cannot create output directory {output_dir}: {exc.strerror or exc}") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise LocalNodeError(f"output directory {output_dir} is not writable")
