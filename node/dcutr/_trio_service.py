"""DCUtR service: upgrade every relayed connection to a direct one (trio adapter).

``open_dcutr(host, ...)`` serves ``/libp2p/dcutr`` (responder role) and, for
each new inbound relayed connection, runs the initiator role: a short direct
dial when the peer announced public addresses, then CONNECT/SYNC exchanges,
each followed by a timed TCP simultaneous open from our listen port, or from
a new port per round when the NAT keeps port numbers. What to do next, when,
and when to give up is decided by the pure machines of
:mod:`node.dcutr.schedule`; this module only performs their actions. The punched socket becomes a normal swarm connection
(Noise + yamux, spec roles), so new streams to that peer use it; the relayed
connection stays until it carries no stream. Each outcome is an event
(:class:`~node.dcutr.policy.Upgraded` / :class:`~node.dcutr.policy.UpgradeFailed`)
given to ``on_event``; if punching fails, the relayed connection stays in use.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from p2pshare.node._trio_race import first_of
from p2pshare.node.dcutr import _trio_libp2p as lp
from p2pshare.node.dcutr._trio_birthday import PROTOCOL_ID as BIRTHDAY_ID
from p2pshare.node.dcutr._trio_birthday import Birthday
from p2pshare.node.dcutr._trio_punch import punch_tcp, reuse_socket
from p2pshare.node.dcutr._trio_rounds import Changes, Rounds
from p2pshare.node.dcutr.birthday import BirthdayConfig
from p2pshare.node.dcutr.budget import RoundBudget
from p2pshare.node.dcutr.policy import (
    DCUtREvent,
    InitiatorExchange,
    NoDialableAddress,
    PunchConfig,
    Ready,
    ResponderExchange,
    Role,
    Upgraded,
    UpgradeFailed,
    fresh_port_ok,
    our_addrs,
    public_dial_addrs,
    with_port,
)
from p2pshare.node.dcutr.schedule import (
    Action,
    DialDirect,
    Exchange,
    Finish,
    InitiatorSchedule,
    Punch,
    ResponderRounds,
    punch_times,
)
from p2pshare.node.dcutr.wire import PROTOCOL_ID, HolePunch, MsgType, WireError, encode, read_message
from p2pshare.node.host import Connection, Host, HostError, LibP2PByteStream
from p2pshare.node.natinfo.addrs import TcpAddr, parse_tcp_addr

__all__ = ["DCUtR", "open_dcutr"]

logger = logging.getLogger(__name__)

Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
_MAX_PARALLEL = 8  # upgrades running at once
_IDENTIFY_WAIT = 3.0  # s a new relayed connection waits for identify to store the peer's addresses
_SETTLE_WAIT = 3.0  # s the initiator waits for our mapping probe to end before its first CONNECT


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
        settled: Callable[[], Awaitable[None]] | None = None,
        hard_ip: Callable[[], str | None] | None = None,
    ) -> None:
        self.host = host
        self._settled = settled
        self.config = config
        self._observed = observed or (lambda: ())
        self._on_event = on_event
        self._nets = local_networks
        self._rng = rng
        self._changes = Changes()  # told whenever busy() may have changed
        self._active = Rounds(self._changes)  # peers we run the initiator role for
        self._answering = Rounds(self._changes)  # peers whose rounds we answer (responder), by stream
        self._responder_rounds = ResponderRounds(4 * _MAX_PARALLEL)
        # Each round punches toward addresses the peer names: the rounds we
        # answer and the upgrades we start (one per relayed connection) are budgeted.
        self._answer_budget = RoundBudget(config.answer_per_minute, config.answer_per_peer)
        self._upgrade_budget = RoundBudget(config.upgrades_per_minute, config.upgrades_per_peer)
        self._slots = trio.Semaphore(_MAX_PARALLEL)
        self._nursery: trio.Nursery | None = None
        self.events: list[DCUtREvent] = []
        self.birthday = Birthday(host, BirthdayConfig(), self._observed, hard_ip or (lambda: None), rng, self._changes)
        self.birthday.on_event = self._emit

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

    async def _attempt(
        self, peer_id: str, ready: Ready, punch_at: Punch, role: Role, rp: RoundPort
    ) -> tuple[str, int] | None:
        """Dial from ``local`` at ``punch_at.dial_at``; the first direct connection
        (ours, or the peer's arriving at our listener) wins. Returns (addr, dials) or None."""
        local = rp.local
        if local is None:
            return None
        await trio.sleep_until(punch_at.dial_at)
        deadline = punch_at.until
        won: list[tuple[str, int]] = []
        ours: list[lp.Ends | None] = []  # our punched socket's ends, once it connects

        async def punch(cancel: trio.CancelScope) -> None:
            got = await punch_tcp(local, list(ready.targets), self.config, self._rng, deadline, rp.listener)
            if got is None:
                await trio.sleep_until(punch_at.late_until)  # a peer's dial may still land
                cancel.cancel()
                return
            ours.append(lp.socket_ends(got.sock))
            try:
                with trio.fail_after(self.config.upgrade_timeout):
                    await lp.upgrade_punched(self.host, got.sock, peer_id, client=role.security_client)
            except (Exception, trio.TooSlowError) as e:
                logger.debug("dcutr: upgrade of punched socket to %s failed: %s", peer_id, e)
                return
            won.append((got.target.multiaddr(), got.dials))
            cancel.cancel()

        async def watch(cancel: trio.CancelScope) -> None:
            # The peer's own dial (its SYN on our listener). Our punched socket
            # joins the swarm (an event) before its upgrade returns to punch():
            # not counting it here kept "(peer's dial)" from winning for it.
            await lp.wait_direct(self.host, peer_id, lambda: ours[0] if ours else None)
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
        if not lp.dialed_via_relay(self.host, peer):
            # Rounds come from B, which accepted a relayed connection, to A,
            # which dialed it (spec; go resets them on inbound connections).
            # Any relayed peer let a stranger dial us through our relay and
            # spend the whole answer budget (a hostile-peer review, stop 43).
            await stream.reset()
            return
        started = trio.current_time()
        if not self.config.punch_holes:
            logger.debug("dcutr: round from %s refused: hole punching is off", peer)
            await stream.reset()
            return
        if not self._answer_budget.allow(peer, started):
            logger.debug("dcutr: round from %s refused: over the answer budget", peer)
            await stream.reset()
            return
        self._responder_rounds.round_started(peer, started)
        with self._answering.running(peer):
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
            if exchange.nothing_offered:  # final: the initiator has no address to punch from
                self._responder_rounds.forget(peer)
                self._emit(
                    UpgradeFailed(peer, Role.RESPONDER.value, trio.current_time() - started, 1, "peer has no address")
                )
                return
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
        punch = Punch(1, *punch_times(self.config, ready, rp.fresh, trio.current_time()))
        result = await self._attempt(peer, ready, punch, Role.RESPONDER, rp)
        if result is not None:
            self._responder_rounds.round_won(peer)
            elapsed = trio.current_time() - started
            self._emit(Upgraded(peer, Role.RESPONDER.value, "hole-punch", elapsed, 1, result[1], ready.rtt, result[0]))
            self._retire_relayed(peer)
        else:
            self._round_failed(
                UpgradeFailed(
                    peer, Role.RESPONDER.value, trio.current_time() - started, 1, "no direct connection in this round"
                )
            )

    def _round_failed(self, event: UpgradeFailed) -> None:
        """The responder learns of a failed round only here; whether it is
        the last one (worth telling a waiting receiver) is for
        :class:`~node.dcutr.schedule.ResponderRounds` to say, at its timer."""
        if self._nursery is None:
            self._emit(event)
            return
        due = self._responder_rounds.round_lost(event.peer_id, trio.current_time(), event)
        self._nursery.start_soon(self._fail_when_due, event.peer_id, due)

    async def _fail_when_due(self, peer_id: str, due: float) -> None:
        await trio.sleep_until(due)
        failure = self._responder_rounds.due(
            peer_id, trio.current_time(), direct=bool(lp.direct_conns(self.host, peer_id))
        )
        if failure is not None and not self.birthday.busy(peer_id):  # its own outcome is the one to tell
            self._emit(failure)

    def busy(self, peer_id: str) -> bool:
        """A round with ``peer_id`` is under way (either role). Its punched
        connection reaches the swarm before the round reports it: a watcher
        that sees a direct connection now should wait for the outcome before
        calling the path a plain dial ("direct") rather than "hole-punched"."""
        return peer_id in self._active or peer_id in self._answering or self.birthday.busy(peer_id)

    async def wait_idle(self, peer_id: str) -> None:
        """Return once no round with ``peer_id`` is under way (at once if none
        is): woken as rounds end, each after telling its outcome, if any."""
        await self._changes.until(lambda: not self.busy(peer_id))

    # -- initiator (B) -----------------------------------------------------

    async def upgrade(self, peer_id: str) -> DCUtREvent:
        """Make the relayed connection to ``peer_id`` direct; never raises.
        Performs the actions of an :class:`~node.dcutr.schedule.InitiatorSchedule`."""
        sched = InitiatorSchedule(peer_id, self.config, trio.current_time())
        public = public_dial_addrs(lp.peerstore_addrs(self.host, peer_id), self.config.allow_loopback)
        action = sched.start(
            trio.current_time(), already_direct=bool(lp.direct_conns(self.host, peer_id)), public_addrs=bool(public)
        )
        while not isinstance(action, Finish):
            if isinstance(action, DialDirect):
                reached = await lp.dial_first(self.host, peer_id, public, action.until)
                action = sched.direct_done(trio.current_time(), reached)
                continue
            if isinstance(action, Exchange):
                await trio.sleep_until(action.at)
                # Behind a symmetric NAT, after the direct dial and before
                # plain rounds (which then fail fast): birthday port probing.
                won = await self.birthday.first(peer_id) if action.round_no == 1 else None
                action = (
                    Finish(won) if isinstance(won, Upgraded) else await self._round(sched, peer_id, action.round_no)
                )
                continue
            raise AssertionError(f"unexpected action {action}")  # Punch is handled inside _round
        event = action.event
        if isinstance(event, Upgraded) and event.method == "already-direct":
            return event  # nothing happened: nothing to report
        self._emit(event)
        if isinstance(event, Upgraded):
            self._retire_relayed(peer_id)
        return event

    async def _round(self, sched: InitiatorSchedule, peer_id: str, round_no: int) -> Action:
        """One round (the round port lives as long as the exchange and the punch)."""
        async with self._round_port() as rp:
            try:
                ready = await self._exchange(peer_id, round_no, rp.ours)
            except (WireError, EOFError, HostError, trio.TooSlowError, ValueError) as e:
                logger.debug("dcutr: round %d: %s with %s", round_no, e or type(e).__name__, peer_id)
                # Nothing to announce (the peer was told so), already direct, or no relay left.
                give_up = not rp.ours or bool(lp.direct_conns(self.host, peer_id))
                give_up = give_up or not lp.relayed_conns(self.host, peer_id)
                return sched.exchange_failed(
                    trio.current_time(),
                    str(e or type(e).__name__),
                    fresh=rp.fresh,
                    give_up=give_up,
                    peer_unready=isinstance(e, NoDialableAddress),
                )
            action = sched.exchanged(trio.current_time(), ready, fresh=rp.fresh)
            assert isinstance(action, Punch)
            result = await self._attempt(peer_id, ready, action, Role.INITIATOR, rp)
        return sched.punched(trio.current_time(), result)

    async def _exchange(self, peer_id: str, round_no: int, ours: list[TcpAddr]) -> Ready:
        if not ours:
            await self._say_nothing_to_announce(peer_id)
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

    async def _say_nothing_to_announce(self, peer_id: str) -> None:
        """An empty CONNECT tells the responder at once that no round can work
        (a receiver on a limited relay would wait out its upgrade wait)."""
        with trio.move_on_after(self.config.exchange_timeout):
            try:
                stream = await self.host.open_stream(peer_id, PROTOCOL_ID)
            except HostError:
                return
            try:
                await stream.write(encode(HolePunch(MsgType.CONNECT, ())))
                await read_message(stream.read)  # ours answers nothing; wait for its reset
            except (HostError, WireError, EOFError):
                pass
            finally:
                await stream.reset()

    # -- relayed connection bookkeeping ------------------------------------

    def _retire_relayed(self, peer_id: str) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._close_relayed_when_idle, peer_id)

    async def _close_relayed_when_idle(self, peer_id: str) -> None:
        """Close relayed connections once the direct one exists and they carry
        no stream (woken as their streams end), for at most ``relay_idle_max``;
        if the direct connection dies, the relay stays."""
        await trio.sleep(self.config.relay_grace)
        with trio.move_on_after(self.config.relay_idle_max):
            await lp.close_idle_relayed(self.host, peer_id)

    async def _on_connection(self, peer_id: str, conn: Connection) -> None:
        # A relayed connection is RELAYED from its opened event on: the path is
        # read from the raw connection under it, a circuit from the start.
        if not lp.is_relayed(conn) or peer_id in self._active:
            return
        inbound = lp.is_inbound(conn)  # outbound: only a symmetric NAT's birthday probing starts here
        # Identify tells us the peer's listen addresses; without them a public peer
        # is punched at, not dialled (a Noise responder on both ends). Bounded wait.
        with trio.move_on_after(_IDENTIFY_WAIT):
            await first_of(partial(lp.wait_addrs, self.host, peer_id), conn.wait_closed)
        if self._settled is not None:
            # Our mapping may still be being learned (a node that just started):
            # CONNECT without it carries only LAN addresses, refused (issue 10).
            with trio.move_on_after(_SETTLE_WAIT):
                await self._settled()
        if not inbound and self.birthday.hard() is None:
            return
        if not self.config.punch_holes:
            return
        if not self._upgrade_budget.allow(peer_id, trio.current_time()):
            logger.debug("dcutr: no upgrade with %s: over the upgrade budget", peer_id)
            return
        with self._active.running(peer_id):
            async with self._slots:
                if inbound:
                    await self.upgrade(peer_id)  # birthday probing inside, after a direct dial
                elif (event := await self.birthday.first(peer_id)) is not None:
                    self._emit(event)
                    if isinstance(event, Upgraded):
                        self._retire_relayed(peer_id)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.host.set_stream_handler(PROTOCOL_ID, self.handle_stream)
        self.host.set_stream_handler(BIRTHDAY_ID, self.birthday.answer)
        try:
            async with lp.watch_connections(self.host) as recv, trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                async for peer_id, conn in recv:
                    nursery.start_soon(self._on_connection, peer_id, conn)
        finally:
            self._nursery = None
            self.host.remove_stream_handler(PROTOCOL_ID)
            self.host.remove_stream_handler(BIRTHDAY_ID)


@asynccontextmanager
async def open_dcutr(
    host: Host,
    config: PunchConfig = PunchConfig(),
    *,
    observed: Callable[[], Sequence[str]] | None = None,
    on_event: Callable[[DCUtREvent], None] | None = None,
    local_networks: Networks = (),
    rng: random.Random | None = None,
    settled: Callable[[], Awaitable[None]] | None = None,
    hard_ip: Callable[[], str | None] | None = None,
) -> AsyncIterator[DCUtR]:
    """Hole-punch every relayed connection while the block runs.

    ``observed`` returns our public TCP mappings of the listen port (from
    :mod:`node.natinfo`), announced before our listen addrs; ``settled``
    returns once a probe for them, if one runs, has ended; ``hard_ip`` our
    public IP when our NAT is symmetric (birthday port probing, see
    :mod:`node.dcutr.birthday`), else None.
    """
    service = DCUtR(host, config, observed, on_event, local_networks, rng or random.Random(), settled, hard_ip)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.serve)
        try:
            yield service
        finally:
            nursery.cancel_scope.cancel()
