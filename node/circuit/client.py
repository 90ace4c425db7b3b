"""Circuit relay v2 client: reservations, the STOP side, and dialing via a relay.

``open_relay_client(host, relays)`` keeps up to ``want`` reservations among the configured
relays: it connects, sends RESERVE, refreshes halfway to the expiry the relay granted, and when a
relay goes away (connection lost, refusal, refresh failure) moves to another configured relay,
retrying the failed one later with exponential backoff. It serves STOP, but only for relays it
holds a reservation on, and hands each accepted circuit to the swarm as a normal one (relayed).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from p2pshare.node import _libp2p_records as records
from p2pshare.node.circuit._upgrade import upgrade_relayed
from p2pshare.node.circuit.schedule import SILENT_GRACE, ReservationSchedule, accept_expiry, stop_waiting_for_relays
from p2pshare.node.circuit.types import (
    CARRIES_DATA_BYTES,
    RelayAddr,
    RelayError,
    ReservationState,
    decode_relay_addrs,
    limit_carries_data,
    parse_relay_addr,
)
from p2pshare.node.circuit.wire import (
    HOP_PROTOCOL_ID,
    STOP_PROTOCOL_ID,
    HopMessage,
    HopType,
    Limit,
    Peer,
    Status,
    StopMessage,
    StopType,
    WireError,
    encode_hop,
    encode_stop,
    read_hop,
    read_stop,
)
from p2pshare.node.dialfail import describe
from p2pshare.node.host import Connection, DialError, Host, LibP2PByteStream, ProtocolRefused, StreamError
from p2pshare.sharecode.multiaddrs import (
    IpClass,
    circuit_multiaddr,
    circuit_names_other,
    ip_class,
    ip_text,
)

__all__ = [
    "CARRIES_DATA_BYTES",
    "RelayClient",
    "RelayError",
    "ReservationState",
    "limit_carries_data",
    "open_relay_client",
    "parse_relay_addr",
]

if TYPE_CHECKING:
    from trio_typing import TaskStatus  # trio's own name is hidden by trio-stubs

logger = logging.getLogger(__name__)

#: Connection-manager protection held on each relay we hold a reservation on.
PROTECT_TAG = "relay"

DIAL_TIMEOUT = 10.0
HANDSHAKE_TIMEOUT = 10.0


class RelayClient:
    """Made by :func:`open_relay_client`."""

    def __init__(
        self,
        host: Host,
        relays: Sequence[str],
        want: int,
        on_change: Callable[[list[str]], None] | None,
    ) -> None:
        self.host = host
        configured: list[RelayAddr] = []
        for a in relays:
            pid, text = parse_relay_addr(a)
            if pid == host.peer_id:
                raise RelayError("a node cannot use itself as its relay")
            configured.append(RelayAddr(pid, text))
        # The address to dial each candidate at: the first configured one, or
        # the one AutoRelay offered (configured relays keep theirs).
        self._relays: dict[str, RelayAddr] = {}
        for r in configured:
            self._relays.setdefault(r.peer_id, r)
        self._on_change = on_change
        self._schedule = ReservationSchedule([r.peer_id for r in configured], want)
        self._holds: dict[str, trio.CancelScope] = {}
        self._active: dict[str, ReservationState] = {}
        self._wake = trio.Event()
        self._changed = trio.Event()
        self._circuit_scopes: set[trio.CancelScope] = set()
        self._circuit_limits: dict[str, Limit] = {}

    # -- what the node publishes ----------------------------------------

    def reservations(self) -> list[ReservationState]:
        return list(self._active.values())

    def relayed_addrs(self) -> list[str]:
        """Our circuit addrs (``<relay addr>/p2p/R/p2p-circuit/p2p/<us>``) for share codes."""
        out: list[str] = []
        for relay_id in self._schedule.candidates():  # configured first, then the best found
            state = self._active.get(relay_id)
            if state is None:
                continue
            out.append(circuit_multiaddr(self._relays[relay_id].addr, self.host.peer_id))
            out.extend(circuit_multiaddr(a, self.host.peer_id) for a in state.addrs)
        return list(dict.fromkeys(out))

    def offer(self, relay_addr: str, *, carries_data: bool | None = None, rtt: float | None = None) -> None:
        """A relay found by the node itself (AutoRelay): hold a reservation on it if it ranks.

        ``relay_addr`` is a dialable address with ``/p2p/<relay>``;
        ``carries_data``: the relay says it carries transfers (a community
        relay), ``rtt``: seconds, when measured. Bad addresses are ignored.
        """
        try:
            relay_id, text = parse_relay_addr(relay_addr)
        except RelayError:
            return
        if relay_id == self.host.peer_id:
            return
        self._relays.setdefault(relay_id, RelayAddr(relay_id, text))
        if self._schedule.offer(relay_id, trio.current_time(), carries_data=carries_data, rtt=rtt):
            self._wake.set()
        live = set(self._schedule.candidates()) | self._schedule.holding
        if len(self._relays) > 2 * len(live) + 16:  # forgotten candidates' addresses go too
            self._relays = {k: v for k, v in self._relays.items() if k in live}

    async def wait_reserved(self, timeout: float, count: int = 1, *, unless_failing: bool = False) -> bool:
        """Wait until ``count`` reservations are held; False on timeout or, ``unless_failing``,
        once the configured relays keep failing or stay silent (``stop_waiting_for_relays``)."""
        began = trio.current_time()
        with trio.move_on_after(timeout):
            while len(self._active) < count:
                waited = trio.current_time() - began
                if unless_failing and stop_waiting_for_relays(
                    waited=waited,
                    any_connected=any(self.host.is_connected(r) for r in self._schedule.relays),
                    all_failing=self._schedule.configured_all_failing(),
                ):
                    return False
                recheck = began + SILENT_GRACE if unless_failing and waited < SILENT_GRACE else math.inf
                with trio.move_on_at(recheck):  # a change, or the grace's end
                    await self._changed.wait()
            return True
        return False

    def is_relayed(self, peer_id: str) -> bool:
        return self.host.connection_path(peer_id) == "relayed"

    def circuit_limit(self, peer_id: str) -> Limit | None:
        """The limit the relay announced for our circuit to ``peer_id`` (None: unlimited)."""
        limit = self._circuit_limits.get(peer_id)
        return None if limit is None or limit.unlimited else limit

    # -- dialing through a relay -----------------------------------------

    async def dial_via_relay(self, peer_id: str, relay_addr: str, *, timeout: float = DIAL_TIMEOUT) -> None:
        """Connect to ``peer_id`` through the relay at ``relay_addr`` (a relay addr
        or a full ``.../p2p-circuit/p2p/<peer>`` addr). Returns at once if a
        connection exists. Raises :class:`RelayError` (a ``DialError``)."""
        relay_id, relay_text = parse_relay_addr(relay_addr)
        if circuit_names_other(relay_addr, peer_id):
            raise RelayError(f"circuit address {relay_addr[:200]!r} names another peer")
        if peer_id in (self.host.peer_id, relay_id):
            raise RelayError("refusing to relay to ourselves or to the relay")
        if self.host.is_connected(peer_id):
            return
        with trio.move_on_after(timeout) as deadline:
            await self._dial(peer_id, relay_id, relay_text, timeout)
            return
        assert deadline.cancelled_caught
        raise RelayError(f"could not reach {peer_id} via relay {relay_id} within {timeout:g}s")

    async def _dial(self, peer_id: str, relay_id: str, relay_text: str, timeout: float) -> None:
        try:
            await self.host.connect(relay_id, [relay_text], timeout=timeout)
            hop = await self.host.open_stream(relay_id, HOP_PROTOCOL_ID)
        except RelayError:
            raise
        except DialError as e:
            raise RelayError(f"relay {relay_id} unreachable: {e}") from e
        try:
            target = Peer(_peer_bytes(peer_id))
            await hop.write(encode_hop(HopMessage(HopType.CONNECT, peer=target)))
            answer = await read_hop(hop.read)
            if answer.type != HopType.STATUS:
                raise RelayError(f"relay answered CONNECT with {answer.type.name}", Status.UNEXPECTED_MESSAGE)
            if answer.status != Status.OK:
                status = answer.status or Status.UNUSED
                raise RelayError(f"relay {relay_id} refused the circuit: {status.name}", status)
            self._note_limit(peer_id, answer.limit)
            await upgrade_relayed(self.host, hop, relay_id, peer_id, initiator=True)
        except RelayError:
            await hop.reset()
            raise
        except (WireError, EOFError, StreamError, ConnectionError, OSError) as e:
            await hop.reset()
            raise RelayError(f"circuit to {peer_id} via {relay_id} failed: {e}") from e
        except BaseException:
            await hop.reset()
            raise

    def _note_limit(self, peer_id: str, limit: Limit | None) -> None:
        """Keep the limit of our new circuit to ``peer_id``; forget those of
        peers we are no longer connected to, so a node that dials through
        limited relays for months keeps one entry per connected peer, not
        one per peer it ever dialled."""
        self._circuit_limits = {p: lim for p, lim in self._circuit_limits.items() if self.host.is_connected(p)}
        if limit is not None:
            self._circuit_limits[peer_id] = limit
        else:
            self._circuit_limits.pop(peer_id, None)

    # -- STOP: incoming circuits -----------------------------------------

    async def _handle_stop(self, stream: LibP2PByteStream) -> None:
        relay = stream.remote_peer_id
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                msg = await read_stop(stream.read)
        except WireError as e:
            logger.warning("relay client: malformed STOP from %s: %s", relay, e)
            await _answer_stop(stream, e.status)
            return
        except (EOFError, trio.TooSlowError):
            return
        if msg.type != StopType.CONNECT or msg.peer is None:
            await _answer_stop(stream, Status.UNEXPECTED_MESSAGE)
            return
        if relay not in self._active:
            logger.warning("relay client: STOP from %s, which holds no reservation of ours", relay)
            await _answer_stop(stream, Status.PERMISSION_DENIED)
            return
        src = records.peer_id_to_text(msg.peer.id)
        if src == self.host.peer_id:
            await _answer_stop(stream, Status.PERMISSION_DENIED)
            return
        await _answer_stop(stream, Status.OK)
        stream.start_bulk()  # the stream now carries the relayed connection
        try:
            conn = await upgrade_relayed(self.host, stream, relay, src, initiator=False)
        except Exception as e:
            logger.warning("relay client: circuit from %s via %s failed: %s", src, relay, e)
            await stream.reset()
            return
        logger.info("relay client: relayed connection from %s via %s", src, relay)
        # The stream now is the connection: keep this handler (which owns the
        # stream) alive until the connection ends, or we shut down.
        scope = trio.CancelScope()
        self._circuit_scopes.add(scope)
        try:
            with scope:
                await conn.wait_closed()
        finally:
            self._circuit_scopes.discard(scope)
            if scope.cancelled_caught:
                await conn.close()

    # -- reservations ----------------------------------------------------

    async def reserve(self, relay_addr: str, *, timeout: float = DIAL_TIMEOUT) -> ReservationState:
        """One RESERVE on the relay at ``relay_addr`` (connects if needed)."""
        relay_id, text = parse_relay_addr(relay_addr)
        with trio.move_on_after(timeout):
            await self.host.connect(relay_id, [text], timeout=timeout)
            state, _ = await self._reserve_once(RelayAddr(relay_id, text))
            return state
        raise RelayError(f"relay {relay_id} did not answer RESERVE within {timeout:g}s")

    async def _reserve_once(self, relay: RelayAddr) -> tuple[ReservationState, Connection]:
        """One RESERVE; also the connection it went over, which the relay
        ties the reservation to (it ends when that connection closes)."""
        try:  # not lazy: a node that is no relay answers "na" (lazily, its reset could overtake it)
            hop = await self.host.open_stream(relay.peer_id, HOP_PROTOCOL_ID, lazy=False)
        except ProtocolRefused:
            where = relay.addr.split("/p2p/", 1)[0]
            raise RelayError(f"the node at {where} is not a relay (it refused circuit relay v2)") from None
        try:
            await hop.write(encode_hop(HopMessage(HopType.RESERVE)))
            answer = await read_hop(hop.read)
        except (WireError, EOFError) as e:
            await hop.reset()
            raise RelayError(f"relay {relay.peer_id} sent a bad RESERVE answer: {e}") from None
        except BaseException:
            await hop.reset()
            raise
        await hop.close_write()
        if answer.type != HopType.STATUS or answer.status != Status.OK:
            status = answer.status or Status.UNUSED
            raise RelayError(f"relay {relay.peer_id} refused the reservation: {status.name}", status)
        r = answer.reservation
        if r is None:
            raise RelayError(f"relay {relay.peer_id} accepted without a reservation", Status.MALFORMED_MESSAGE)
        expire = accept_expiry(r.expire, time.time())
        if expire is None:
            raise RelayError(f"relay {relay.peer_id} granted a reservation already expired")
        state = ReservationState(
            relay.peer_id,
            relay.addr,
            expire,
            decode_relay_addrs(
                r.addrs, relay.peer_id, keep_loopback=ip_class(ip_text(relay.addr) or "") is IpClass.LOOPBACK
            ),
            answer.limit,
            r.voucher is not None,
        )
        return state, hop.connection

    async def _hold_in(self, scope: trio.CancelScope, relay: RelayAddr) -> None:
        try:
            with scope:
                await self._hold(relay)
        finally:  # _hold's own ``finally`` releases the slot, also when the plan stopped it
            if self._holds.get(relay.peer_id) is scope:
                del self._holds[relay.peer_id]

    async def _hold(self, relay: RelayAddr) -> None:
        """Hold a reservation on ``relay`` until it fails; then back off.

        The reservation lives as long as the connection it was made on, not
        as long as we have *a* connection to the relay: start-up dials leave
        several, and py-libp2p closes the surplus later (one per peer). So
        the watch is on that connection; when it closes, we reserve again at
        once on another connection if one is left, else after the backoff.
        """
        try:
            await self.host.connect(relay.peer_id, [relay.addr], timeout=DIAL_TIMEOUT)
            while True:
                with trio.fail_after(HANDSHAKE_TIMEOUT):
                    state, conn = await self._reserve_once(relay)
                renewed = relay.peer_id in self._active
                self._active[relay.peer_id] = state
                delay = self._schedule.reserved(relay.peer_id, state.expire, time.time())
                # What the relay granted says whether it can carry a transfer.
                self._schedule.offer(relay.peer_id, trio.current_time(), carries_data=limit_carries_data(state.limit))
                self._wake.set()  # the plan may now upgrade, or stop a worse relay
                logger.info(
                    "relay client: %s reservation on %s until %d",
                    "refreshed" if renewed else "holding",
                    relay.peer_id,
                    state.expire,
                )
                if not renewed:
                    self.host.protect(relay.peer_id, PROTECT_TAG)  # not pruned while idle
                    self._notify()
                with trio.move_on_after(delay):
                    await conn.wait_closed()
                    if not self.host.is_connected(relay.peer_id):
                        raise RelayError(f"the connection holding our reservation on relay {relay.peer_id} closed")
                    # Another connection to the relay is left (start-up dials
                    # leave several): reserve on it now, not after a backoff,
                    # so circuits are refused NO_RESERVATION for one RTT at most.
                    logger.info("relay client: reservation connection to %s closed; reserving again", relay.peer_id)
                    continue
        except (RelayError, DialError, StreamError, trio.TooSlowError, OSError) as e:
            backoff = self._schedule.failed(relay.peer_id, trio.current_time())
            self._wake_waiters()  # a waiter may stop waiting for relays that keep failing
            log = logger.warning if self._schedule.worth_a_warning(relay.peer_id) else logger.info
            why = describe(e, typed_id=self._schedule.configured(relay.peer_id))
            log("relay %s unusable: %s; retrying (next in %.0fs)", relay.peer_id, why, backoff)
        finally:
            self._schedule.released(relay.peer_id)
            self.host.unprotect(relay.peer_id, PROTECT_TAG)
            if self._active.pop(relay.peer_id, None) is not None:
                self._notify()
            self._wake.set()

    def _wake_waiters(self) -> None:
        """Wake every ``wait_reserved`` to look again (reservations or failures changed)."""
        self._changed.set()
        self._changed = trio.Event()

    def _notify(self) -> None:
        self._wake_waiters()
        if self._on_change is not None:
            try:
                self._on_change(self.relayed_addrs())
            except Exception:
                logger.exception("relay client: on_change callback failed")

    async def serve(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep ``want`` reservations among the configured relays, until cancelled."""
        self.host.set_stream_handler(STOP_PROTOCOL_ID, self._handle_stop)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    plan = self._schedule.plan(trio.current_time())
                    for relay_id in plan.start:
                        scope = self._holds[relay_id] = trio.CancelScope()
                        nursery.start_soon(self._hold_in, scope, self._relays[relay_id])
                    for relay_id in plan.stop:
                        logger.info("relay client: letting %s go for a better relay", relay_id)
                        self._holds[relay_id].cancel()
                    self._wake = trio.Event()
                    with trio.move_on_at(plan.wake_at):
                        await self._wake.wait()
        finally:
            self.host.remove_stream_handler(STOP_PROTOCOL_ID)
            for scope in list(self._circuit_scopes):
                scope.cancel()


async def _answer_stop(stream: LibP2PByteStream, status: Status) -> None:
    try:
        await stream.write(encode_stop(StopMessage(StopType.STATUS, status=status)))
    except Exception as e:
        logger.debug("could not answer STOP: %s", e)


def _peer_bytes(peer_id: str) -> bytes:
    try:
        return records.peer_id_to_bytes(peer_id)
    except ValueError:
        raise RelayError(f"bad peer ID {peer_id[:64]!r}") from None


@asynccontextmanager
async def open_relay_client(
    host: Host,
    relays: Sequence[str],
    *,
    want: int = 2,
    on_change: Callable[[list[str]], None] | None = None,
) -> AsyncIterator[RelayClient]:
    """Reserve on up to ``want`` of ``relays`` (multiaddrs with ``/p2p/<relay>``)
    and accept circuits through them while the block runs. ``on_change`` gets
    the new :meth:`RelayClient.relayed_addrs` whenever a reservation starts or
    ends. Dialing via a relay works with an empty ``relays`` list too."""
    client = RelayClient(host, relays, want, on_change)
    async with trio.open_nursery() as nursery:
        await nursery.start(client.serve)
        try:
            yield client
        finally:
            nursery.cancel_scope.cancel()
