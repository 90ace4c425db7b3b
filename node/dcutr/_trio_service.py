"""DCUtR service: upgrade every relayed connection to a direct one (trio adapter).

``open_dcutr(host, ...)`` serves ``/libp2p/dcutr`` (responder role) and, for
each new inbound relayed connection, runs the initiator role: a short direct
dial when the peer announced public addresses, then up to ``rounds``
CONNECT/SYNC exchanges, each followed by a timed TCP simultaneous open from
our listen port, or from a new port per round when the NAT keeps port
numbers (see :mod:`node.dcutr.policy`). The punched socket becomes a normal swarm connection
(Noise + yamux, spec roles), so new streams to that peer use it; the relayed
connection stays until it carries no stream. Each outcome is an event
(:class:`~node.dcutr.policy.Upgraded` / :class:`~node.dcutr.policy.UpgradeFailed`)
given to ``on_event``. If punching fails, the relayed connection simply
stays in use.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from p2pshare.node.dcutr import _trio_libp2p as lp
from p2pshare.node.dcutr._trio_punch import punch_tcp, reuse_socket
from p2pshare.node.dcutr.policy import (
    DCUtREvent,
    InitiatorExchange,
    PunchConfig,
    Ready,
    ResponderExchange,
    Role,
    Upgraded,
    UpgradeFailed,
    fresh_port_ok,
    our_addrs,
    with_port,
)
from p2pshare.node.dcutr.wire import PROTOCOL_ID, WireError, read_message
from p2pshare.node.host import Host, HostError, LibP2PByteStream
from p2pshare.node.natinfo.addrs import TcpAddr, parse_tcp_addr

__all__ = ["DCUtR", "open_dcutr"]

logger = logging.getLogger(__name__)

Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
_MAX_PARALLEL = 8  # upgrades running at once
_POLL = 0.05
_MARK_POLLS = 60  # up to 3 s for a new connection to be marked relayed
_LATE_ARRIVAL = 0.5  # after our dials stop, how long a peer's dial to our listener may still land
_NEXT_ROUND_GRACE = 1.5  # a responder round's failure is final when no new round starts by then
_LATE_ARRIVAL_FRESH = 0.1  # ... on a fresh port nothing listens: only a crossing SYN can still finish


@dataclass(frozen=True)
class RoundPort:
    """Where one round dials from (None: no TCP listener) and what it announces."""

    local: tuple[str, int] | None
    ours: list[TcpAddr]
    fresh: bool
    listener: trio.socket.SocketType | None = None  # listening on ``local`` (fresh ports only)


class DCUtR:
    """Made by :func:`open_dcutr`."""

    def __init__(
        self,
        host: Host,
        config: PunchConfig,
        observed: Callable[[], Sequence[str]] | None,
        on_event: Callable[[DCUtREvent], None] | None,
        local_networks: Networks,
        rng: random.Random,
    ) -> None:
        self.host = host
        self.config = config
        self._observed = observed or (lambda: ())
        self._on_event = on_event
        self._nets = local_networks
        self._rng = rng
        self._active: set[str] = set()
        self._responder_rounds: dict[str, int] = {}  # peer -> rounds answered in the current upgrade
        self._slots = trio.Semaphore(_MAX_PARALLEL)
        self._nursery: trio.Nursery | None = None
        self.events: list[DCUtREvent] = []

    # -- addresses ---------------------------------------------------------

    def _local(self) -> tuple[str, int] | None:
        bound = lp.listen_tcp(self.host)
        v4 = [b for b in bound if ":" not in b[0]]
        pick = v4 or bound
        return pick[0] if pick else None

    def _ours(self, port: tuple[int, int] | None = None) -> list[TcpAddr]:
        """Our CONNECT addresses; ``port`` = (listen port, new port) swaps the port."""
        observed = [a for a in (parse_tcp_addr(x) for x in self._observed()) if a is not None]
        listen = [a for a in (parse_tcp_addr(x) for x in self.host.listen_addrs()) if a is not None]
        if port is not None:
            observed, listen = with_port(observed, *port), with_port(listen, *port)
        return our_addrs(observed, listen, self.config.allow_loopback)

    @asynccontextmanager
    async def _round_port(self) -> AsyncIterator[RoundPort]:
        """A new local port for this round when its public mapping is
        predictable (held by a bound, never-listening socket until the round
        ends, so nothing else takes it), else the listen port."""
        local = self._local()
        observed = [a for a in (parse_tcp_addr(x) for x in self._observed()) if a is not None]
        if local is None or not self.config.fresh_ports or not fresh_port_ok(observed, local[1]):
            yield RoundPort(local, self._ours(), False)
            return
        holder = reuse_socket(local[0])
        try:
            try:
                await holder.bind((local[0], 0))
            except OSError as e:
                logger.debug("dcutr: no fresh port (%s); punching from the listen port", e)
                yield RoundPort(local, self._ours(), False)
                return
            port = int(holder.getsockname()[1])
            listener: trio.socket.SocketType | None = holder
            try:
                holder.listen(4)
            except OSError as e:
                logger.debug("dcutr: fresh port %d cannot listen: %s", port, e)
                listener = None
            yield RoundPort((local[0], port), self._ours((local[1], port)), True, listener)
        finally:
            holder.close()

    def _emit(self, event: DCUtREvent) -> None:
        self.events.append(event)
        del self.events[:-64]
        logger.info("dcutr: %s", event)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                logger.exception("dcutr: on_event callback failed")

    # -- the punch itself --------------------------------------------------

    async def _attempt(self, peer_id: str, ready: Ready, role: Role, rp: RoundPort) -> tuple[str, int] | None:
        """Dial from ``local`` at ``ready.dial_at``; the first direct connection
        (ours, or the peer's arriving at our listener) wins. Returns (addr, dials) or None."""
        local = rp.local
        if local is None:
            return None
        await trio.sleep_until(ready.dial_at)
        deadline = trio.current_time() + (self.config.fresh_round_window if rp.fresh else self.config.round_window)
        late = _LATE_ARRIVAL_FRESH if rp.fresh else _LATE_ARRIVAL
        won: list[tuple[str, int]] = []

        async def punch(cancel: trio.CancelScope) -> None:
            got = await punch_tcp(local, list(ready.targets), self.config, self._rng, deadline, rp.listener)
            if got is None:
                await trio.sleep_until(deadline + late)  # a peer's dial may still land
                cancel.cancel()
                return
            try:
                with trio.fail_after(self.config.upgrade_timeout):
                    await lp.upgrade_punched(self.host, got.sock, peer_id, client=role.security_client)
            except (Exception, trio.TooSlowError) as e:
                logger.debug("dcutr: upgrade of punched socket to %s failed: %s", peer_id, e)
                return
            won.append((got.target.multiaddr(), got.dials))
            cancel.cancel()

        async def watch(cancel: trio.CancelScope) -> None:
            while not lp.direct_conns(self.host, peer_id):
                await trio.sleep(_POLL)
            won.append(("(peer's dial)", 0))
            cancel.cancel()

        with trio.move_on_at(deadline + self.config.upgrade_timeout):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(punch, nursery.cancel_scope)
                nursery.start_soon(watch, nursery.cancel_scope)
        return won[0] if won else None

    # -- responder (A) -----------------------------------------------------

    async def handle_stream(self, stream: LibP2PByteStream) -> None:
        peer = stream.remote_peer_id
        if not lp.is_relayed(stream.connection) and not lp.relayed_conns(self.host, peer):
            await stream.reset()  # DCUtR only makes sense over a relayed connection
            return
        started = trio.current_time()
        if peer not in self._responder_rounds and len(self._responder_rounds) >= 4 * _MAX_PARALLEL:
            self._responder_rounds.pop(next(iter(self._responder_rounds)))
        self._responder_rounds[peer] = self._responder_rounds.get(peer, 0) + 1
        async with self._round_port() as rp:
            await self._respond(stream, peer, started, rp)

    async def _respond(self, stream: LibP2PByteStream, peer: str, started: float, rp: RoundPort) -> None:
        exchange = ResponderExchange(rp.ours, self._nets, self.config.allow_loopback)
        try:
            with trio.fail_after(self.config.exchange_timeout):
                answer = exchange.receive(await read_message(stream.read), trio.current_time())
                assert isinstance(answer, bytes)
                await stream.write(answer)
                ready = exchange.receive(await read_message(stream.read), trio.current_time())
                assert isinstance(ready, Ready)
        except (WireError, EOFError, HostError, trio.TooSlowError) as e:
            logger.debug("dcutr: exchange with %s failed: %s", peer, e)
            await stream.reset()
            self._round_failed(
                UpgradeFailed(
                    peer,
                    Role.RESPONDER.value,
                    trio.current_time() - started,
                    1,
                    f"exchange failed: {e or type(e).__name__}",
                )
            )
            return
        if lp.direct_conns(self.host, peer):
            return
        result = await self._attempt(peer, ready, Role.RESPONDER, rp)
        if result is not None:
            self._responder_rounds.pop(peer, None)
            self._emit(
                Upgraded(
                    peer,
                    Role.RESPONDER.value,
                    "hole-punch",
                    trio.current_time() - started,
                    1,
                    result[1],
                    ready.rtt,
                    result[0],
                )
            )
            self._retire_relayed(peer)
        else:
            self._round_failed(
                UpgradeFailed(
                    peer, Role.RESPONDER.value, trio.current_time() - started, 1, "no direct connection in this round"
                )
            )

    def _round_failed(self, event: UpgradeFailed) -> None:
        """The responder learns of a failed round only here. Telling the node
        lets a receiver waiting for the punch start over the relay at once,
        but the initiator usually starts another round right away (with
        fresh ports, many short ones): report only when none follows within
        ``_NEXT_ROUND_GRACE``, i.e. when the initiator gave up."""
        if self._nursery is None:
            self._emit(event)
            return
        self._nursery.start_soon(self._fail_if_last, event, self._responder_rounds.get(event.peer_id, 0))

    async def _fail_if_last(self, event: UpgradeFailed, seen: int) -> None:
        await trio.sleep(_NEXT_ROUND_GRACE)
        if self._responder_rounds.get(event.peer_id, 0) != seen or lp.direct_conns(self.host, event.peer_id):
            return
        self._responder_rounds.pop(event.peer_id, None)
        self._emit(UpgradeFailed(event.peer_id, event.role, event.elapsed, seen, event.reason))

    # -- initiator (B) -----------------------------------------------------

    async def upgrade(self, peer_id: str) -> DCUtREvent:
        """Make the relayed connection to ``peer_id`` direct; never raises."""
        started = trio.current_time()
        if lp.direct_conns(self.host, peer_id):
            return Upgraded(peer_id, Role.INITIATOR.value, "already-direct", 0.0, 0, 0, None, "")
        reached = await self._unilateral(peer_id)
        if reached is not None:
            event: DCUtREvent = Upgraded(
                peer_id, Role.INITIATOR.value, "unilateral", trio.current_time() - started, 0, 1, None, reached
            )
            self._emit(event)
            self._retire_relayed(peer_id)
            return event
        reason = "no round ran"
        round_no, fresh = 0, False
        while round_no < self.config.rounds or (fresh and round_no < self.config.fresh_rounds):
            round_no += 1
            async with self._round_port() as rp:
                fresh = rp.fresh
                try:
                    ready = await self._exchange(peer_id, round_no, rp.ours)
                except (WireError, EOFError, HostError, trio.TooSlowError, ValueError) as e:
                    reason = f"round {round_no}: {e or type(e).__name__}"
                    logger.debug("dcutr: %s with %s", reason, peer_id)
                    if lp.direct_conns(self.host, peer_id) or not lp.relayed_conns(self.host, peer_id):
                        break
                    continue
                result = await self._attempt(peer_id, ready, Role.INITIATOR, rp)
            if result is not None:
                event = Upgraded(
                    peer_id,
                    Role.INITIATOR.value,
                    "hole-punch",
                    trio.current_time() - started,
                    round_no,
                    result[1],
                    ready.rtt,
                    result[0],
                )
                self._emit(event)
                self._retire_relayed(peer_id)
                return event
            reason = f"no direct connection after {round_no} round(s)"
        event = UpgradeFailed(peer_id, Role.INITIATOR.value, trio.current_time() - started, round_no, reason)
        self._emit(event)
        return event

    async def _unilateral(self, peer_id: str) -> str | None:
        public = []
        for text in lp.peerstore_addrs(self.host, peer_id):
            a = parse_tcp_addr(text)
            if a is not None and (a.public or (self.config.allow_loopback and a.ip.startswith("127."))):
                public.append(a.multiaddr())
        if not public or self.config.unilateral_timeout <= 0:
            return None
        won: list[str] = []

        async def one(addr: str, cancel: trio.CancelScope) -> None:
            try:
                await lp.dial_direct(self.host, peer_id, addr)
            except Exception as e:
                logger.debug("dcutr: direct dial %s failed: %s", addr, e)
                return
            won.append(addr)
            cancel.cancel()

        with trio.move_on_after(self.config.unilateral_timeout):
            async with trio.open_nursery() as nursery:
                for addr in public[:4]:
                    nursery.start_soon(one, addr, nursery.cancel_scope)
        return won[0] if won and lp.direct_conns(self.host, peer_id) else None

    async def _exchange(self, peer_id: str, round_no: int, ours: list[TcpAddr]) -> Ready:
        exchange = InitiatorExchange(ours, self.config, round_no, self._nets)
        with trio.fail_after(self.config.exchange_timeout):
            stream = await self.host.open_stream(peer_id, PROTOCOL_ID)
            try:
                await stream.write(exchange.start(trio.current_time()))
                msg = await read_message(stream.read)
                sync, ready = exchange.receive(msg, trio.current_time())
                await stream.write(sync)
            except BaseException:
                await stream.reset()
                raise
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            try:
                await stream.close_write()
            except HostError:
                pass
        return ready

    # -- relayed connection bookkeeping ------------------------------------

    def _retire_relayed(self, peer_id: str) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._close_relayed_when_idle, peer_id)

    async def _close_relayed_when_idle(self, peer_id: str) -> None:
        """Close relayed connections once the direct one exists and they carry
        no stream (or after ``relay_idle_max``)."""
        await trio.sleep(self.config.relay_grace)
        with trio.move_on_after(self.config.relay_idle_max):
            while lp.relayed_conns(self.host, peer_id):
                if not lp.direct_conns(self.host, peer_id):
                    return  # the direct connection died: keep the relay
                idle = [c for c in lp.relayed_conns(self.host, peer_id) if lp.stream_count(c) == 0]
                for conn in idle:
                    await lp.close_conn(conn)
                await trio.sleep(0.5)

    async def _on_connection(self, peer_id: str, conn: Any) -> None:
        # The relay client marks a connection RELAYED only after the swarm
        # announced it, sometimes well after (a loaded machine): poll, bounded.
        for _ in range(_MARK_POLLS):
            await trio.sleep(_POLL)
            if lp.is_relayed(conn) or getattr(conn, "is_closed", False):
                break
        if not (lp.is_relayed(conn) and lp.is_inbound(conn)) or peer_id in self._active:
            return
        # Identify over the new connection tells us the peer's listen
        # addresses; without them a public peer gets punched at instead of
        # dialled normally, and a punched socket that lands on its listener
        # meets a Noise responder on both ends. Wait for it, bounded.
        for _ in range(_MARK_POLLS):
            if lp.peerstore_addrs(self.host, peer_id) or getattr(conn, "is_closed", False):
                break
            await trio.sleep(_POLL)
        self._active.add(peer_id)
        try:
            async with self._slots:
                await self.upgrade(peer_id)
        finally:
            self._active.discard(peer_id)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.host.set_stream_handler(PROTOCOL_ID, self.handle_stream)
        try:
            async with lp.watch_connections(self.host) as recv, trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                async for peer_id, conn in recv:
                    nursery.start_soon(self._on_connection, peer_id, conn)
        finally:
            self._nursery = None
            self.host.remove_stream_handler(PROTOCOL_ID)


@asynccontextmanager
async def open_dcutr(
    host: Host,
    config: PunchConfig = PunchConfig(),
    *,
    observed: Callable[[], Sequence[str]] | None = None,
    on_event: Callable[[DCUtREvent], None] | None = None,
    local_networks: Networks = (),
    rng: random.Random | None = None,
) -> AsyncIterator[DCUtR]:
    """Hole-punch every relayed connection while the block runs.

    ``observed`` returns our public TCP mappings of the listen port (from
    :mod:`node.natinfo`), announced before our listen addrs.
    """
    service = DCUtR(host, config, observed, on_event, local_networks, rng or random.Random())
    async with trio.open_nursery() as nursery:
        await nursery.start(service.serve)
        try:
            yield service
        finally:
            nursery.cancel_scope.cancel()
