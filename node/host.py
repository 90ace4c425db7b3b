"""The host façade: our one door to a py-libp2p host (TCP + Noise + yamux only).

Only this module and the private ``node/_libp2p_*.py`` modules behind it
(``_libp2p_impl``: the connection layer; ``_libp2p_records``: peer IDs, keys,
envelopes, schemas; ``_libp2p_patches``; ``_libp2p_lean_import``) import
py-libp2p; ``tests/test_layering_libp2p.py`` enforces it. The rest of the
code sees :class:`Host`, :class:`Connection` (typed: path, direction, stream
count, close), :class:`ConnectionEvent` (an async stream of opened/closed
connections instead of polling; ``identify_events`` likewise for peers whose
identify was stored) and :class:`LibP2PByteStream` (which satisfies
``transfer.stream.ByteStream``).

Importing this module has no side effect: py-libp2p is imported (after the
lean import is installed) and patched only when :func:`open_host` runs.

The measured traps of py-libp2p 0.8.1 (docs in /work/shared/notes) are
avoided here: Noise is the only security protocol (the defaults also accept
plaintext and secio), one connection per peer (the default waits a fixed
250 ms per dial), handlers can never leak an exception into py-libp2p (that
silently breaks the connection), the host is closed explicitly (leaving
``run()`` does not stop the listener), the auto-connector that dials every
known peer is stopped, and the ``libp2p`` logger is routed to ours.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import multiaddr
import trio

from . import _libp2p_events as _events
from ._libp2p_conn import (
    Connection,
    ConnectionEvent,
    DialError,
    Direction,
    HostError,
    LibP2PByteStream,
    ListenError,
    ProtocolRefused,
    StreamError,
    stream_error,
)
from ._libp2p_conn import impl as _impl
from ._libp2p_conn import parse_addr as _parse_addr
from ._libp2p_conn import parse_peer_id as _parse_peer_id
from ._libp2p_conn import short_error as _short
from ._libp2p_conn import sole_exception as _sole_exception
from .bindcheck import bind_failure, listen_problem
from .dialfail import DialFailure, DialFailureKind, classify
from .events import ConnectionPath
from .ping import PING_PROTOCOL, serve_ping

if TYPE_CHECKING:
    from libp2p.abc import IHost, INetStream
    from libp2p.crypto.keys import KeyPair as KeyPair
    from libp2p.crypto.keys import PrivateKey as PrivateKey
    from libp2p.peer.id import ID

    from ._libp2p_impl import KadTable as KadTable

__all__ = ["Host", "HostError", "DialError", "ListenError", "StreamError", "ProtocolRefused", "Connection"]
__all__ += ["ConnectionEvent", "ConnectionPath", "Direction", "LibP2PByteStream", "StreamHandler", "open_host"]
__all__ += ["configure_libp2p_logging"]

logger = logging.getLogger(__name__)

# How long addresses learned from a dial stay in the peerstore.
_ADDR_TTL = 3600
# Bound on addresses dialled in parallel for one peer.
_MAX_DIAL_ADDRS = 16
_CLOSE_TIMEOUT = 5.0

StreamHandler = Callable[["LibP2PByteStream"], Awaitable[None]]


def configure_libp2p_logging() -> None:
    """Send py-libp2p's records through our logging, quietly (see ``_libp2p_impl``)."""
    _impl.configure_logging()


class Host:
    """A running libp2p host: dial, open streams, serve protocols, watch connections."""

    def __init__(self, libp2p_host: IHost) -> None:
        #: The py-libp2p host, for the façade's private modules and for tests.
        self.libp2p: IHost = libp2p_host
        pid = libp2p_host.get_id()
        self.peer_id: str = pid.to_base58()
        self.peer_id_bytes: bytes = pid.to_bytes()
        self._punched: weakref.WeakSet[Any] = weakref.WeakSet()

    # -- addresses -------------------------------------------------------

    def listen_addrs(self) -> list[str]:
        """Concrete dialable addresses (real ports, wildcards expanded)."""
        out: list[str] = []
        for maddr in self.libp2p.get_transport_addrs():
            out.extend(_impl.expand_wildcard(maddr))
        return list(dict.fromkeys(out))

    def listen_tcp(self) -> list[tuple[str, int]]:
        """Our bound TCP listen sockets as (ip, port); wildcards kept."""
        return _impl.tcp_listen_sockets(self.libp2p)

    def advertised_addrs(self) -> list[str]:
        """The addresses identify and our signed peer record announce."""
        return [str(a) for a in self.libp2p.get_addrs()]

    def signed_peer_record(self) -> bytes:
        """Our signed peer record (envelope bytes), as Kademlia requests carry it."""
        return _impl.signed_peer_record(self.libp2p)

    def peer_addrs(self, peer_id: str) -> list[str]:
        """Addresses the peerstore holds for ``peer_id`` (identify, dials)."""
        try:
            return [str(a) for a in self.libp2p.get_peerstore().addrs(_parse_peer_id(peer_id))]
        except Exception:
            return []

    def peer_protocols(self, peer_id: str) -> frozenset[str]:
        """Protocols ``peer_id`` announced in identify (empty until identified)."""
        try:
            return frozenset(str(p) for p in self.libp2p.get_peerstore().get_protocols(_parse_peer_id(peer_id)))
        except Exception:
            return frozenset()

    def connected_peers(self) -> list[str]:
        """Peers with at least one live connection."""
        network: Any = self.libp2p.get_network()
        return [str(pid) for pid in list(network.connections) if self._connections(pid)]

    def announce_also(self, addrs: Sequence[str]) -> None:
        """Announce ``addrs`` (relayed addresses) in identify and our peer record, too."""
        _impl.announce_also(self.libp2p, list(addrs))

    def set_own_addrs(self, addrs: Sequence[str], ttl: int) -> None:
        """Put ``addrs`` (replacing the others) under our own peer ID in the peerstore."""
        maddrs = [multiaddr.Multiaddr(a) for a in addrs]
        store = self.libp2p.get_peerstore()
        store.clear_addrs(self.libp2p.get_id())
        store.add_addrs(self.libp2p.get_id(), maddrs, ttl)

    # -- connections -----------------------------------------------------

    def is_connected(self, peer_id: str) -> bool:
        return bool(self._connections(_parse_peer_id(peer_id)))

    def _connections(self, pid: ID) -> list[Any]:
        conns = self.libp2p.get_network().get_connections(pid)
        return [c for c in conns if not getattr(c, "is_closed", False)]

    def _wrap(self, conn: Any) -> Connection:
        return Connection(conn, punched=conn in self._punched)

    def connections(self, peer_id: str) -> list[Connection]:
        """Live connections to ``peer_id``."""
        return [self._wrap(c) for c in self._connections(_parse_peer_id(peer_id))]

    def connection_path(self, peer_id: str) -> ConnectionPath | None:
        """DIRECT when some live connection is not relayed, RELAYED when all
        are, else None. (Whether a direct one was punched: :class:`Connection`.)"""
        conns = self._connections(_parse_peer_id(peer_id))
        if not conns:
            return None
        if any(not _impl.is_relayed(c) for c in conns):
            return ConnectionPath.DIRECT
        return ConnectionPath.RELAYED

    def connection_events(self) -> AbstractAsyncContextManager[trio.MemoryReceiveChannel[ConnectionEvent]]:
        """A stream of connections opened and closed, from now until the block exits.

        The swarm never waits for a subscriber: events beyond a generous
        buffer are dropped, so a subscriber re-checks the state it waits for.
        """
        return _events.connection_events(self.libp2p, self._wrap)

    def stream_closed_events(self) -> AbstractAsyncContextManager[trio.MemoryReceiveChannel[str]]:
        """Peer IDs one of whose streams just closed (its connection's stream
        count is lower), from now until the block exits (dropped beyond a
        buffer: re-check, as with :meth:`connection_events`)."""
        return _events.stream_closed_events(self.libp2p)

    def identify_events(self) -> AbstractAsyncContextManager[trio.MemoryReceiveChannel[str]]:
        """Peer IDs whose identify (answer or push) was just stored in the
        peerstore, from now until the block exits (dropped beyond a buffer:
        re-check, as with :meth:`connection_events`)."""
        return _events.identify_events(self.libp2p)

    async def wait_disconnected(self, peer_id: str) -> None:
        """Return once no live connection to ``peer_id`` is left."""
        async with self.connection_events() as events:
            while self.is_connected(peer_id):
                with trio.move_on_after(1.0):  # a dropped event costs at most this
                    async for event in events:
                        if not event.opened and event.peer_id == peer_id:
                            break

    async def connect(self, peer_id: str, addrs: Sequence[str], *, timeout: float) -> None:
        """Connect to ``peer_id``, dialling all ``addrs`` at once; first wins."""
        pid = _parse_peer_id(peer_id)
        if pid == self.libp2p.get_id():
            raise DialError("refusing to dial ourselves")
        if self._connections(pid):
            return
        maddrs = list(dict.fromkeys(_parse_addr(a, pid) for a in addrs))[:_MAX_DIAL_ADDRS]
        if not maddrs:
            raise DialError(f"no addresses to dial {peer_id}")
        network: Any = self.libp2p.get_network()
        self.libp2p.get_peerstore().add_addrs(pid, maddrs, _ADDR_TTL)
        failures: dict[str, DialFailure] = {}
        won = False

        async def dial_one(maddr: multiaddr.Multiaddr, cancel: trio.CancelScope) -> None:
            nonlocal won
            try:
                await network.dial_addr(maddr, pid)
            except Exception as e:
                failures[str(maddr)] = DialFailure(str(maddr), classify(e), _short(e))
                return
            won = True
            cancel.cancel()

        with trio.move_on_after(timeout) as deadline:
            async with trio.open_nursery() as nursery:
                for maddr in maddrs:
                    nursery.start_soon(dial_one, maddr, nursery.cancel_scope)
        if won or self._connections(pid):
            return
        if deadline.cancelled_caught:
            late = f"no answer within {timeout:g}s"
            for a in map(str, maddrs):
                failures.setdefault(a, DialFailure(a, DialFailureKind.TIMED_OUT, late))
            raise DialError(f"could not reach {peer_id} within {timeout:g}s", list(failures.values()))
        detail = "; ".join(f"{f.addr}: {f.detail}" for f in list(failures.values()))
        raise DialError(f"could not reach {peer_id}: {detail[:500]}", list(failures.values()))

    async def dial_direct(self, peer_id: str, addr: str) -> Connection:
        """A NEW direct connection to ``addr`` even if a (relayed) one exists;
        py-libp2p's errors pass through (callers race several of these)."""
        network: Any = self.libp2p.get_network()
        return self._wrap(await network.dial_addr(multiaddr.Multiaddr(addr), _parse_peer_id(peer_id)))

    async def connect_unknown(self, addr: str, *, timeout: float, keep: bool = True) -> str:
        """Dial ``addr`` without knowing the peer ID; return the one Noise proved.

        ``keep=False`` (AutoNAT's dial-back): the connection only proves who
        answers there and is closed after the handshake, never handed to the
        swarm nor its address remembered: a requester could otherwise name
        decoy peers on its ports and leave connections in our swarm (found
        in a long-uptime review: up to 160 a minute per IP, outside the
        resource manager's inbound limits)."""
        maddr = _parse_addr(addr, None)
        network: Any = self.libp2p.get_network()
        transport = network.transport_manager.transport_for_dialing(maddr)
        if transport is None:
            raise DialError(f"no transport can dial {addr[:200]!r}")
        with trio.move_on_after(timeout) as deadline:
            try:
                return await self._dial_unknown(network, transport, maddr, keep)
            except HostError:
                raise
            except Exception as e:
                raise DialError(f"could not connect to {maddr}: {_short(e)}") from e
        assert deadline.cancelled_caught
        raise DialError(f"could not reach {maddr} within {timeout:g}s")

    async def _dial_unknown(self, network: Any, transport: Any, maddr: multiaddr.Multiaddr, keep: bool) -> str:
        raw = await transport.dial(maddr)
        upgrader = network.upgrader
        try:
            # remote_peer=None: Noise still verifies the peer's signed static
            # key and tells us whose it is; we just cannot pin it in advance.
            secured = await upgrader.security_multistream.secure_outbound(raw, None)
        except BaseException:
            with trio.CancelScope(shield=True):
                await _impl.aclose_quietly(raw)
            raise
        pid: ID = secured.get_remote_peer()
        if pid == self.libp2p.get_id():
            await _impl.aclose_quietly(secured)
            raise DialError("that address is our own node")
        if not keep:
            await _impl.aclose_quietly(secured)
            return str(pid.to_base58())
        if self._connections(pid):  # keep the connection we already have
            await _impl.aclose_quietly(secured)
            self.libp2p.get_peerstore().add_addrs(pid, [maddr], _ADDR_TTL)
            return str(pid.to_base58())
        try:
            muxed = await upgrader.upgrade_connection(secured, pid)
            await network.add_conn(muxed, direction="outbound")
        except BaseException:
            with trio.CancelScope(shield=True):
                await _impl.aclose_quietly(secured)
            raise
        self.libp2p.get_peerstore().add_addrs(pid, [maddr], _ADDR_TTL)
        return str(pid.to_base58())

    def rtt(self, peer_id: str) -> float | None:
        """Smoothed yamux ping RTT in seconds (measured ~0.5 s after connect)."""
        for conn in self._connections(_parse_peer_id(peer_id)):
            rtt_fn = getattr(getattr(conn, "muxed_conn", None), "rtt", None)
            if callable(rtt_fn):
                value = float(rtt_fn())
                if value > 0:
                    return value
        return None

    def protect(self, peer_id: str, tag: str) -> None:
        """Keep the connection manager from pruning ``peer_id``'s connections (per ``tag``).

        py-libp2p's pruner closes idle connections once a node holds more
        than its high watermark; a relay's reservation holders and a NATed
        node's relays are idle most of the time and must not be its victims.
        """
        self.libp2p.get_network().protect(_parse_peer_id(peer_id), tag)

    def unprotect(self, peer_id: str, tag: str) -> None:
        try:
            self.libp2p.get_network().unprotect(_parse_peer_id(peer_id), tag)
        except Exception:  # noqa: BLE001 - nothing to undo
            pass

    async def disconnect(self, peer_id: str) -> None:
        await self.libp2p.disconnect(_parse_peer_id(peer_id))

    # -- connections we did not dial ourselves ------------------------------

    async def upgrade_punched(self, sock: trio.socket.SocketType, peer_id: str, *, initiator: bool) -> Connection:
        """Secure and multiplex a punched TCP socket (Noise ``initiator`` or
        responder); the swarm keeps the connection, whose path is HOLE_PUNCHED.
        Raises ConnectionError when the peer is not ``peer_id``."""
        stream = trio.SocketStream(sock)
        raw = _impl.tcp_raw_connection(stream, initiator)
        ip, port = sock.getpeername()[:2]
        fam = "ip6" if ":" in ip else "ip4"
        maddr = multiaddr.Multiaddr(f"/{fam}/{ip}/tcp/{port}")
        try:
            conn = await _impl.upgrade_raw(
                self.libp2p, raw, _parse_peer_id(peer_id), maddr, initiator=initiator, what="punched connection"
            )
        except BaseException:
            with trio.CancelScope(shield=True):
                try:
                    await stream.aclose()
                except Exception:
                    pass
            raise
        self._punched.add(conn)
        return self._wrap(conn)

    async def upgrade_relayed(
        self, stream: LibP2PByteStream, circuit_addr: str, peer_id: str, *, initiator: bool
    ) -> Connection:
        """Secure and multiplex a circuit (the HOP or STOP ``stream`` after
        ``STATUS: OK``); the swarm keeps the connection, whose path is RELAYED.
        Raises ConnectionError when the peer is not ``peer_id`` (a lying relay)."""
        maddr = multiaddr.Multiaddr(circuit_addr)
        raw = _impl.relayed_raw_connection(_impl.StreamIO(stream.net_stream), initiator, maddr)
        conn = await _impl.upgrade_raw(
            self.libp2p, raw, _parse_peer_id(peer_id), maddr, initiator=initiator, what="relayed connection"
        )
        _impl.mark_relayed(conn, maddr)
        return self._wrap(conn)

    # -- Kademlia ------------------------------------------------------------

    def new_kad_dht(self, *, server_mode: bool, protocol: str) -> KadTable:
        """py-libp2p's Kademlia on this host (serves inbound RPCs in server mode)."""
        return _impl.new_kad_dht(self.libp2p, server_mode=server_mode, server_protocol=protocol)

    # -- streams ---------------------------------------------------------

    async def open_stream(self, peer_id: str, protocol: str, *, lazy: bool = True) -> LibP2PByteStream:
        """Open a stream speaking ``protocol`` (dials known addrs if needed), lazily: the
        first request rides with the protocol name; a refusal fails the first read (as
        :class:`ProtocolRefused`, or a reset where the peer's reset overtakes its "na").
        ``lazy=False`` waits one round trip: a refusal is always ProtocolRefused, at the open."""
        try:
            net_stream = await _impl.new_stream_lazy(self.libp2p, _parse_peer_id(peer_id), protocol, lazy=lazy)
        except Exception as e:
            raise stream_error(peer_id, protocol, e) from e
        return LibP2PByteStream(net_stream, bulk=True)

    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        """Serve ``protocol``; the handler's exceptions are logged, never leaked."""

        async def guarded(net_stream: INetStream) -> None:
            try:
                stream = LibP2PByteStream(net_stream)
            except Exception as e:
                logger.debug("dropping inbound %s stream: %s", protocol, e)
                with trio.CancelScope(shield=True):
                    try:
                        await net_stream.reset()
                    except Exception:
                        pass
                return
            try:
                await handler(stream)
            except Exception as e:
                logger.warning(
                    "%s handler failed for peer %s: %s",
                    protocol,
                    stream.remote_peer_id,
                    _short(e),
                )
                logger.debug("handler traceback", exc_info=True)
                await stream.reset()
                return
            try:
                await stream.close_write()
            except Exception:
                pass

        self.libp2p.set_stream_handler(_impl.TProtocol(protocol), guarded)

    def remove_stream_handler(self, protocol: str) -> None:
        """Stop serving ``protocol``: its streams are reset from now on.

        The handler is replaced, not deleted: py-libp2p's multiselect checks
        that a protocol has a handler, awaits a write, then looks the handler
        up again, so deleting it while a peer negotiates that protocol raises
        a KeyError inside the swarm, which tore down the whole host (seen
        when a service stopped while a peer opened a DCUtR stream: a finished
        get exited 1 with "internal error: KeyError: '/libp2p/dcutr'").
        """

        async def refuse(stream: LibP2PByteStream) -> None:
            await stream.reset()

        self.set_stream_handler(protocol, refuse)


@asynccontextmanager
async def open_host(
    key_pair: KeyPair,
    listen_addrs: Sequence[str] = ("/ip4/127.0.0.1/tcp/0",),
) -> AsyncIterator[Host]:
    """Run a host listening on ``listen_addrs``; everything stops on exit.

    The first call in a process installs the lean import of py-libp2p
    (unless py-libp2p is imported already) and applies the patches.
    """
    from . import _libp2p_lean_import

    _libp2p_lean_import.install()
    from . import _libp2p_patches

    _libp2p_patches.apply()
    configure_libp2p_logging()
    # TCP only; and py-libp2p listens with SO_REUSEPORT (hole punching dials
    # from the listen port), as would another p2pshare process on the same
    # port: both listened, and the kernel dealt each incoming connection to
    # one of them at random. Asked first without it, the kernel says it is taken.
    refused = [f"{a[:200]}: {why}" for a in listen_addrs if (why := listen_problem(a))]
    if refused:
        raise ListenError(f"cannot listen on {'; '.join(refused)}")
    try:
        maddrs = [multiaddr.Multiaddr(a) for a in listen_addrs]
    except Exception as e:
        raise ListenError(f"bad listen address: {_short(e)}") from None
    libp2p_host = _impl.build_host(key_pair, maddrs)
    try:
        async with libp2p_host.run(listen_addrs=maddrs):
            try:
                network: Any = libp2p_host.get_network()
                failed = [str(m) for m in maddrs if str(m) not in network.listeners]
                if failed:  # py-libp2p logged why; ask the kernel again for the person
                    said = [f"{a}: {why}" if (why := bind_failure(a)) else a for a in failed]
                    raise ListenError(f"cannot listen on {'; '.join(said)}")
                # We connect to the peers we need; never dial the whole peerstore.
                await network.auto_connector.stop()
                _libp2p_patches.no_disconnect_records(network)
                host = Host(libp2p_host)
                host.set_stream_handler(PING_PROTOCOL, serve_ping)  # ours, not PingService's (see node/ping.py)
                yield host
            finally:
                with trio.CancelScope(shield=True):
                    with trio.move_on_after(_CLOSE_TIMEOUT):
                        await _impl.close_connections_at_once(libp2p_host)
                        await libp2p_host.close()
    except BaseExceptionGroup as group:
        # py-libp2p runs our body inside its own nurseries, which wrap
        # whatever the body raises (a DialError, KeyboardInterrupt, ...) in
        # exception groups. Hand callers the exception itself when alone.
        leaf = _sole_exception(group)
        if leaf is None:
            raise
        saved = leaf.__cause__, leaf.__context__, leaf.__suppress_context__
        try:
            raise leaf
        finally:  # keep the leaf's own chain, not "during handling of the group"
            leaf.__cause__, leaf.__context__, leaf.__suppress_context__ = saved
