"""Circuit relay v2 HOP server (trio adapter over ``relay.limits`` and ``relay.pump``).

Serves ``/libp2p/circuit/relay/0.2.0/hop``: RESERVE grants a slot per the
:class:`~relay.limits.RelayLimits` (with the relay's public addrs, an expiry
and a signed voucher); CONNECT opens ``/stop`` to the reserved peer over its
existing connection (never dials: active relaying is deprecated) and splices
the two streams. Every refusal answers the spec's status code and logs one
WARNING line naming the limit and its flag. Reservations end with their
connection (checked at CONNECT and by a sweeper) or at expiry.

Circuits run inside the HOP stream's handler task (py-libp2p owns that task);
each registers a cancel scope here, so leaving :func:`serve_relay` ends them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import multiaddr
import trio

from p2pshare.node import _libp2p_records as records
from p2pshare.node.circuit.limits import (
    Decision,
    RelayLimits,
    RelayStats,
    ReservationBook,
    ReservationInfo,
    TokenBucket,
)
from p2pshare.node.circuit.pump import splice
from p2pshare.node.circuit.voucher import make_voucher
from p2pshare.node.circuit.wire import (
    HOP_PROTOCOL_ID,
    STOP_PROTOCOL_ID,
    HopMessage,
    HopType,
    Peer,
    Reservation,
    Status,
    StopMessage,
    StopType,
    WireError,
    encode_hop,
    encode_stop,
    read_hop,
    read_stop,
)
from p2pshare.node.host import Connection, ConnectionPath, Host, LibP2PByteStream, StreamError
from p2pshare.node.natinfo.addrs import ip_group

__all__ = ["RelayServer", "RelayStats", "serve_relay", "HANDSHAKE_TIMEOUT"]

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from p2pshare.node.host import PrivateKey  # trio's own name is hidden by trio-stubs

logger = logging.getLogger(__name__)

#: Connection-manager protection held for each peer with a live reservation.
PROTECT_TAG = "relay-reservation"

HANDSHAKE_TIMEOUT = 10.0  # seconds for a peer (or the target) to answer
_SWEEP_INTERVAL = 5.0


def _short_id(peer: str) -> str:
    return peer[-12:]


class RelayServer:
    """State of one running relay; made by :func:`serve_relay`."""

    def __init__(
        self,
        host: Host,
        limits: RelayLimits,
        private_key: PrivateKey | None,
        announce: Sequence[str] | None,
    ) -> None:
        self.host = host
        self.limits = limits
        #: All circuits' bytes together, when the operator capped them.
        self._total_rate = TokenBucket(limits.total_rate) if limits.total_rate else None
        self.book = ReservationBook(limits)
        self.stats = RelayStats()
        self._key = private_key
        self._announce = list(announce or [])
        self._circuit_scopes: set[trio.CancelScope] = set()
        self._closing = False

    # -- addresses -------------------------------------------------------

    def addrs(self) -> list[str]:
        """Public relay addrs with ``/p2p/<relay>`` (what reservations carry)."""
        base = self._announce or self.host.listen_addrs()
        suffix = f"/p2p/{self.host.peer_id}"
        return [a if a.endswith(suffix) else a + suffix for a in base]

    def _addrs_bytes(self) -> tuple[bytes, ...]:
        out: list[bytes] = []
        for a in self.addrs():
            try:
                out.append(bytes(multiaddr.Multiaddr(a).to_bytes()))
            except Exception:
                logger.debug("skipping unencodable address %s", a)
        return tuple(out[:16])

    # -- HOP -------------------------------------------------------------

    async def handle_hop(self, stream: LibP2PByteStream) -> None:
        peer = stream.remote_peer_id
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                msg = await read_hop(stream.read)
        except WireError as e:
            logger.warning("relay: malformed HOP message from %s: %s", _short_id(peer), e)
            await self._answer(stream, e.status)
            return
        except (EOFError, trio.TooSlowError):
            return
        conn = stream.connection
        if msg.type == HopType.RESERVE:
            await self._reserve(stream, peer, conn)
        elif msg.type == HopType.CONNECT:
            assert msg.peer is not None  # validated by the codec
            await self._connect(stream, peer, conn, msg.peer.id)
        else:
            logger.warning("relay: unexpected HOP %s from %s", msg.type.name, _short_id(peer))
            await self._answer(stream, Status.UNEXPECTED_MESSAGE)

    async def _answer(self, stream: LibP2PByteStream, status: Status, **fields: Any) -> None:
        try:
            await stream.write(encode_hop(HopMessage(HopType.STATUS, status=status, **fields)))
        except Exception as e:
            logger.debug("could not answer %s: %s", stream.remote_peer_id, e)

    async def _reserve(self, stream: LibP2PByteStream, peer: str, conn: Any) -> None:
        ip = _remote_ip(conn)
        if _is_relayed(conn):
            decision = Decision(Status.PERMISSION_DENIED, "reservation over a relayed connection")
        else:
            decision = self.book.reserve(peer, conn, ip, trio.current_time())
            self._ended(decision.dropped, "expired")
        if not decision.ok:
            self.stats.reservations_refused += 1
            logger.info(  # a peer's doing, counted in the stats line: not the operator's problem
                "relay: refused reservation for %s (%s): %s: %s",
                peer,
                ip,
                decision.status.name,
                decision.reason,
            )
            await self._answer(stream, decision.status)
            return
        self.stats.reservations_granted += 1
        self.host.protect(peer, PROTECT_TAG)  # its idle connection is what the reservation needs
        expire = int(time.time()) + decision.ttl
        voucher = None
        if self._key is not None:
            voucher = make_voucher(self._key, self.host.peer_id_bytes, stream.remote_peer_id_bytes, expire)
        reservation = Reservation(expire, self._addrs_bytes(), voucher)
        logger.info(
            "relay: %s reservation for %s (%s) until %d (%d active)",
            "refreshed" if decision.refreshed else "granted",
            peer,
            ip,
            expire,
            len(self.book),
        )
        await self._answer(stream, Status.OK, reservation=reservation, limit=self.limits.wire_limit())

    async def _connect(self, stream: LibP2PByteStream, src: str, conn: Any, dst_bytes: bytes) -> None:
        dst = records.peer_id_to_text(dst_bytes)
        now = trio.current_time()
        if _is_relayed(conn):
            decision, circuit = Decision(Status.PERMISSION_DENIED, "CONNECT over a relayed connection"), None
        else:
            for r in self.book.reservations_of(dst, now):
                if _is_closed(r.conn):
                    self._ended([self.book.drop_connection(r.conn)], "ended with its connection")
            decision, circuit = self.book.open_circuit(src, dst, now, _remote_ip(conn))
        if circuit is None:
            self.stats.circuits_refused += 1
            logger.info(  # counted in the stats line (a client retrying after a restart, a limit)
                "relay: refused circuit %s -> %s: %s: %s",
                _short_id(src),
                _short_id(dst),
                decision.status.name,
                decision.reason,
            )
            await self._answer(stream, decision.status)
            return
        try:
            await self._bridge(stream, src, dst)
        finally:
            self.book.close_circuit(circuit)

    async def _bridge(self, hop: LibP2PByteStream, src: str, dst: str) -> None:
        limit = self.limits.wire_limit()
        stop: LibP2PByteStream | None = None
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                stop = await self.host.open_stream(dst, STOP_PROTOCOL_ID)
                await stop.write(
                    encode_stop(StopMessage(StopType.CONNECT, peer=Peer(hop.remote_peer_id_bytes), limit=limit))
                )
                answer = await read_stop(stop.read)
            if answer.type != StopType.STATUS or answer.status != Status.OK:
                raise WireError(f"target answered {answer.type.name} {answer.status!r}")
        except (Exception, trio.TooSlowError) as e:
            self.stats.circuits_refused += 1
            logger.info(  # the target went away: churn, counted in the stats line
                "relay: circuit %s -> %s failed at the target: CONNECTION_FAILED: %s",
                _short_id(src),
                _short_id(dst),
                str(e) or type(e).__name__,
            )
            if stop is not None:
                await stop.reset()
            await self._answer(hop, Status.CONNECTION_FAILED)
            return
        self.stats.circuits_opened += 1
        await self._answer(hop, Status.OK, limit=limit)
        logger.info("relay: circuit %s -> %s open", _short_id(src), _short_id(dst))
        scope = trio.CancelScope()
        self._circuit_scopes.add(scope)
        hop.start_bulk()  # the circuit's bytes flow from here on (``stop`` we opened: bulk already)
        try:
            with scope:
                if self._closing:
                    scope.cancel()
                result = await splice(
                    _PumpStream(hop),
                    _PumpStream(stop),
                    limit,
                    circuit_rate=self.limits.circuit_rate,
                    total=self._total_rate,
                    idle=self.limits.circuit_idle,
                    carried=self._carried,
                )
                # How each circuit ended is -v detail: a receiver resets its
                # stream when done, and limits are the operator's own policy.
                # As warnings, every transfer printed one and the log budget
                # then muted the rest (a usability review).
                logger.info(
                    "relay: circuit %s -> %s ended (%s) after %d + %d bytes",
                    _short_id(src),
                    _short_id(dst),
                    result.reason,
                    result.bytes_ab,
                    result.bytes_ba,
                )
        finally:
            self._circuit_scopes.discard(scope)
            if scope.cancelled_caught:
                with trio.CancelScope(shield=True):
                    await hop.reset()
                    await stop.reset()

    def _carried(self, n: int) -> None:
        self.stats.bytes_relayed += n

    # -- housekeeping ----------------------------------------------------

    def sweep(self) -> None:
        """Drop expired reservations and those whose connection closed."""
        self._ended(self.book.expire(trio.current_time()), "expired")
        for conn in self.book.connections():
            if _is_closed(conn):
                self._ended([self.book.drop_connection(conn)], "ended with its connection")

    def _ended(self, dropped: Iterable[ReservationInfo | None], how: str) -> None:
        """Reservations the book dropped: their peers lose the protection
        (every path that drops one comes here, or it would stay forever)."""
        for r in dropped:
            if r is not None:
                logger.info("relay: reservation of %s %s", r.peer, how)
                self._unprotect(r.peer)

    def _unprotect(self, peer: str) -> None:
        if not self.book.reservations_of(peer, trio.current_time()):
            self.host.unprotect(peer, PROTECT_TAG)

    def close(self) -> None:
        self._closing = True
        for scope in list(self._circuit_scopes):
            scope.cancel()


class _PumpStream:
    """A host stream for :func:`splice`: reads as ``LibP2PByteStream`` does
    (EOF vs reset told apart) but writes each chunk whole, so the muxer cuts
    frames (the patched yamux sends up to 1 MiB per lock and Noise write)."""

    def __init__(self, stream: LibP2PByteStream) -> None:
        self._b = stream
        self._write = stream.write_whole
        self.read = stream.read
        self.close_write = stream.close_write
        self.reset = stream.reset

    async def write(self, data: bytes) -> None:
        try:
            await self._write(data)
        except Exception as e:
            raise StreamError(f"stream to {self._b.remote_peer_id} broke: {type(e).__name__}: {e}") from e


def _remote_ip(conn: Connection) -> str | None:
    """What the per-IP limits count the peer as: its IPv4 address, or its
    IPv6 /64 (one host's allocation: one /64 holds 2^64 addresses, and keyed
    by the address a single host took every circuit slot)."""
    addr = conn.remote_address()
    return ip_group(addr[0]) if addr else None


def _is_relayed(conn: Connection) -> bool:
    return conn.path is ConnectionPath.RELAYED


def _is_closed(conn: Any) -> bool:
    return bool(getattr(conn, "is_closed", True))


async def serve_relay(
    host: Host,
    limits: RelayLimits,
    *,
    private_key: PrivateKey | None = None,
    announce: Sequence[str] | None = None,
    task_status: TaskStatus[RelayServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve HOP on ``host`` until cancelled; ``task_status`` gets the server.

    ``private_key`` (the host's identity key) signs reservation vouchers;
    without it reservations carry none. ``announce`` overrides the addrs
    given to clients (default: the host's listen addrs).
    """
    server = RelayServer(host, limits, private_key, announce)
    host.set_stream_handler(HOP_PROTOCOL_ID, server.handle_hop)
    try:
        task_status.started(server)
        while True:
            await trio.sleep(_SWEEP_INTERVAL)
            server.sweep()
    finally:
        host.remove_stream_handler(HOP_PROTOCOL_ID)
        server.close()
