"""Our small interface over a py-libp2p host (TCP + Noise + yamux only).

Only this module and ``node/_libp2p_patches.py`` touch py-libp2p's connection
layer. The rest of the code sees :class:`Host` and :class:`LibP2PByteStream`
(which satisfies ``transfer.stream.ByteStream``).

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
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from . import _libp2p_lean_import

_libp2p_lean_import.install()  # before the first py-libp2p import below
import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetStream
from libp2p.connection_types import ConnectionType
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from multiaddr.utils import get_network_addrs

from p2pshare.errors import LocalError, P2PShareError, RemoteError
from p2pshare.sharecode.multiaddrs import unspecified_host

from . import _libp2p_patches

__all__ = [
    "Host",
    "HostError",
    "DialError",
    "ListenError",
    "StreamError",
    "LibP2PByteStream",
    "StreamHandler",
    "open_host",
    "configure_libp2p_logging",
]

logger = logging.getLogger(__name__)

# How long addresses learned from a dial stay in the peerstore.
_ADDR_TTL = 3600
# Bound on addresses dialled in parallel for one peer.
_MAX_DIAL_ADDRS = 16
_CLOSE_TIMEOUT = 5.0
# Loggers that report normal events (peer EOF, cancelled dials) at WARNING or
# ERROR; they are capped at CRITICAL/ERROR unless LIBP2P_DEBUG asks otherwise.
_NOISY_LOGGERS = {
    "libp2p.kad_dht": logging.ERROR,  # "Failed to read DHT message" on every EOF
    "libp2p.network.swarm": logging.ERROR,  # [ADDCONN_FAIL] on cancelled dial races
    "libp2p.host.basic_host": logging.CRITICAL,  # multi-line error we re-raise
    "libp2p.stream_muxer.yamux.yamux": logging.CRITICAL,  # peer vanished mid-frame
    "libp2p.transport.tcp.tcp": logging.CRITICAL,  # refused dials we re-raise
    "libp2p.identity.identify": logging.ERROR,
    "libp2p.protocol_muxer": logging.CRITICAL,  # failed negotiations we re-raise
    "libp2p.network.auto_connector": logging.WARNING,  # sets itself to INFO
}

StreamHandler = Callable[["LibP2PByteStream"], Awaitable[None]]


class HostError(P2PShareError):
    """A failure of the libp2p host; ``str()`` is one line."""


class ListenError(HostError, LocalError, OSError):
    """A listen address could not be bound (an ``OSError``, as binds are)."""


class DialError(HostError, RemoteError, ConnectionError):
    """The peer could not be reached or authenticated in time."""


class StreamError(HostError, RemoteError, ConnectionError):
    """The stream was reset, or its connection broke."""


def configure_libp2p_logging() -> None:
    """Send py-libp2p's records through our logging, quietly.

    ``import libp2p`` sets its logger to ``propagate=False`` with no handler,
    so its warnings reach stderr through ``logging.lastResort`` and bypass
    our handlers. With ``LIBP2P_DEBUG`` set, py-libp2p's own setup is kept.
    """
    if os.environ.get("LIBP2P_DEBUG"):
        return
    root = logging.getLogger("libp2p")
    root.propagate = True
    root.setLevel(logging.WARNING)
    for name, level in _NOISY_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


def _short(exc: BaseException) -> str:
    """One line naming the innermost cause, for error messages."""
    seen: list[str] = []
    cur: BaseException | None = exc
    while cur is not None and len(seen) < 4:
        text = str(cur).strip().splitlines()[0] if str(cur).strip() else ""
        seen.append(f"{type(cur).__name__}: {text}" if text else type(cur).__name__)
        cur = cur.__cause__ or cur.__context__
    return seen[-1] if len(seen) == 1 else f"{seen[0]} ({seen[-1]})"


def _parse_peer_id(peer_id: str) -> ID:
    try:
        return ID.from_base58(peer_id)
    except Exception:
        raise DialError(f"bad peer ID {peer_id[:64]!r}") from None


def _parse_addr(addr: str, peer_id: ID | None) -> multiaddr.Multiaddr:
    """Parse a dialable multiaddr, dropping a matching ``/p2p/<id>`` suffix."""
    try:
        maddr = multiaddr.Multiaddr(addr)
    except Exception:
        raise DialError(f"bad multiaddr {addr[:200]!r}") from None
    try:
        p2p = maddr.value_for_protocol("p2p")
    except Exception:
        p2p = None
    if p2p:
        if peer_id is not None and str(p2p) != peer_id.to_base58():
            raise DialError(f"address {addr[:200]!r} names another peer")
        maddr = maddr.decapsulate(multiaddr.Multiaddr(f"/p2p/{p2p}"))
    return maddr


class LibP2PByteStream:
    """A libp2p stream as a ``transfer.stream.ByteStream``."""

    def __init__(self, net_stream: INetStream) -> None:
        self._s = net_stream
        peer = net_stream.muxed_conn.peer_id
        self.remote_peer_id: str = peer.to_base58()
        self.remote_peer_id_bytes: bytes = peer.to_bytes()
        self.protocol: str = str(net_stream.get_protocol() or "")
        self._write_closed = False
        self._reset = False

    @property
    def net_stream(self) -> INetStream:
        """The underlying py-libp2p stream (escape hatch)."""
        return self._s

    async def read(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` only at end of stream."""
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        try:
            return bytes(await self._s.read(max_bytes))
        except StreamEOF:
            # py-libp2p's yamux drops a stream's state when a RST arrives and
            # then reports EOF: tell a reset apart from a clean end here.
            if getattr(getattr(self._s, "muxed_stream", None), "reset_received", False):
                raise StreamError(f"stream from {self.remote_peer_id} was reset") from None
            return b""
        except Exception as e:
            raise StreamError(f"stream from {self.remote_peer_id} broke: {_short(e)}") from e

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``: whole to the patched yamux writer (it frames
        and batches any buffer without copying it), else in ``bytes`` pieces
        of one yamux frame per Noise message (what stock yamux expects)."""
        piece = _libp2p_patches.write_piece()
        try:
            if piece == sys.maxsize:  # the patched writer only takes a memoryview of it
                await cast(Any, self._s).write(data)
                return
            if len(data) <= piece:
                await self._s.write(bytes(data))  # no copy if it is bytes already
                return
            with memoryview(data) as view:
                for start in range(0, len(view), piece):
                    await self._s.write(bytes(view[start : start + piece]))
        except Exception as e:
            raise StreamError(f"stream to {self.remote_peer_id} broke: {_short(e)}") from e

    async def close_write(self) -> None:
        """Half-close: the peer reads EOF after what was written."""
        if self._write_closed or self._reset:
            return
        self._write_closed = True
        try:
            await cast(Any, self._s).close_write()  # NetStream has it; INetStream not
        except Exception as e:
            raise StreamError(f"closing stream to {self.remote_peer_id}: {_short(e)}") from e

    async def reset(self) -> None:
        """Abort both directions; never raises."""
        if self._reset:
            return
        self._reset = True
        with trio.CancelScope(shield=True):
            try:
                await self._s.reset()
            except Exception as e:  # the connection may already be gone
                logger.debug("reset of stream to %s failed: %s", self.remote_peer_id, e)


class Host:
    """A running libp2p host: dial, open streams, serve protocols."""

    def __init__(self, libp2p_host: IHost) -> None:
        self.libp2p: IHost = libp2p_host
        pid = libp2p_host.get_id()
        self.peer_id: str = pid.to_base58()
        self.peer_id_bytes: bytes = pid.to_bytes()

    # -- addresses -------------------------------------------------------

    def listen_addrs(self) -> list[str]:
        """Concrete dialable addresses (real ports, wildcards expanded)."""
        out: list[str] = []
        for maddr in self.libp2p.get_transport_addrs():
            out.extend(_expand_wildcard(maddr))
        return list(dict.fromkeys(out))

    # -- connections -----------------------------------------------------

    def is_connected(self, peer_id: str) -> bool:
        return bool(self._connections(_parse_peer_id(peer_id)))

    def _connections(self, pid: ID) -> list[Any]:
        conns = self.libp2p.get_network().get_connections(pid)
        return [c for c in conns if not getattr(c, "is_closed", False)]

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
        errors: list[str] = []
        won = False

        async def dial_one(maddr: multiaddr.Multiaddr, cancel: trio.CancelScope) -> None:
            nonlocal won
            try:
                await network.dial_addr(maddr, pid)
            except Exception as e:
                errors.append(f"{maddr}: {_short(e)}")
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
            raise DialError(f"could not reach {peer_id} within {timeout:g}s")
        raise DialError(f"could not reach {peer_id}: {'; '.join(errors)[:500]}")

    async def connect_unknown(self, addr: str, *, timeout: float) -> str:
        """Dial ``addr`` without knowing the peer ID; return the one Noise proved."""
        maddr = _parse_addr(addr, None)
        network: Any = self.libp2p.get_network()
        transport = network.transport_manager.transport_for_dialing(maddr)
        if transport is None:
            raise DialError(f"no transport can dial {addr[:200]!r}")
        with trio.move_on_after(timeout) as deadline:
            try:
                return await self._dial_unknown(network, transport, maddr)
            except HostError:
                raise
            except Exception as e:
                raise DialError(f"could not connect to {maddr}: {_short(e)}") from e
        assert deadline.cancelled_caught
        raise DialError(f"could not reach {maddr} within {timeout:g}s")

    async def _dial_unknown(self, network: Any, transport: Any, maddr: multiaddr.Multiaddr) -> str:
        raw = await transport.dial(maddr)
        upgrader = network.upgrader
        try:
            # remote_peer=None: Noise still verifies the peer's signed static
            # key and tells us whose it is; we just cannot pin it in advance.
            secured = await upgrader.security_multistream.secure_outbound(raw, None)
        except BaseException:
            with trio.CancelScope(shield=True):
                await _aclose_quietly(raw)
            raise
        pid: ID = secured.get_remote_peer()
        if pid == self.libp2p.get_id():
            await _aclose_quietly(secured)
            raise DialError("that address is our own node")
        if self._connections(pid):  # keep the connection we already have
            await _aclose_quietly(secured)
            self.libp2p.get_peerstore().add_addrs(pid, [maddr], _ADDR_TTL)
            return str(pid.to_base58())
        try:
            muxed = await upgrader.upgrade_connection(secured, pid)
            await network.add_conn(muxed, direction="outbound")
        except BaseException:
            with trio.CancelScope(shield=True):
                await _aclose_quietly(secured)
            raise
        self.libp2p.get_peerstore().add_addrs(pid, [maddr], _ADDR_TTL)
        return str(pid.to_base58())

    def connection_path(self, peer_id: str) -> str | None:
        """``"direct"`` or ``"relayed"`` for a live connection, else None."""
        conns = self._connections(_parse_peer_id(peer_id))
        if not conns:
            return None
        for conn in conns:
            try:
                if conn.get_connection_type() != ConnectionType.RELAYED:
                    return "direct"
            except Exception:
                return "direct"
        return "relayed"

    def rtt(self, peer_id: str) -> float | None:
        """Smoothed yamux ping RTT in seconds (measured ~0.5 s after connect)."""
        for conn in self._connections(_parse_peer_id(peer_id)):
            rtt_fn = getattr(getattr(conn, "muxed_conn", None), "rtt", None)
            if callable(rtt_fn):
                value = float(rtt_fn())
                if value > 0:
                    return value
        return None

    async def disconnect(self, peer_id: str) -> None:
        await self.libp2p.disconnect(_parse_peer_id(peer_id))

    # -- streams ---------------------------------------------------------

    async def open_stream(self, peer_id: str, protocol: str) -> LibP2PByteStream:
        """Open a stream speaking ``protocol`` (dials known addrs if needed)."""
        pid = _parse_peer_id(peer_id)
        try:
            net_stream = await self.libp2p.new_stream(pid, [TProtocol(protocol)])
        except Exception as e:
            raise StreamError(f"cannot open {protocol} stream to {peer_id}: {_short(e)}") from e
        return LibP2PByteStream(net_stream)

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

        self.libp2p.set_stream_handler(TProtocol(protocol), guarded)

    def remove_stream_handler(self, protocol: str) -> None:
        self.libp2p.remove_stream_handler(TProtocol(protocol))


def _expand_wildcard(maddr: multiaddr.Multiaddr) -> list[str]:
    text = str(maddr)
    wild = unspecified_host(text)
    if wild is None:
        return [text]
    family, rest = wild
    if family == "ip4":
        ips = ["127.0.0.1", *get_network_addrs(4)]
    else:
        ips = ["::1", *get_network_addrs(6)]
    return [f"/{family}/{a}/{rest}" for a in dict.fromkeys(ips)]


async def upgrade_raw_connection(
    host: Host, raw: Any, peer_id: str, addr: multiaddr.Multiaddr, *, initiator: bool, what: str
) -> Any:
    """Secure and multiplex ``raw`` (Noise initiator or responder) and return the
    swarm connection; a remote that is not ``peer_id`` is refused and closed.

    Shared by connections that do not come from our own dials: relayed ones
    (circuit relay) and punched sockets (DCUtR). ``what`` names them in errors.
    """
    expected = _parse_peer_id(peer_id)
    if initiator:
        conn: Any = await host.libp2p.upgrade_outbound_connection(raw, expected)
        muxed = conn.muxed_conn
    else:
        muxed = await host.libp2p.upgrade_inbound_connection(raw, addr)
        conn = None
    if muxed.peer_id != expected:
        with trio.CancelScope(shield=True):
            await muxed.close()
        raise ConnectionError(f"{what} reached {muxed.peer_id}, not {peer_id}")
    if conn is None:
        conn = next(
            (c for c in host.libp2p.get_network().get_connections(expected) if getattr(c, "muxed_conn", None) is muxed),
            None,
        )
    if conn is None:
        with trio.CancelScope(shield=True):
            await muxed.close()
        raise ConnectionError(f"{what} was not kept by the swarm")
    return conn


def _expand_wildcards(addrs: list[multiaddr.Multiaddr]) -> list[multiaddr.Multiaddr]:
    out: list[multiaddr.Multiaddr] = []
    for maddr in addrs:
        out.extend(multiaddr.Multiaddr(a) for a in _expand_wildcard(maddr))
    return out


async def _aclose_quietly(conn: Any) -> None:
    try:
        await conn.close()
    except Exception:
        pass


def _build_libp2p_host(key_pair: KeyPair, maddrs: list[multiaddr.Multiaddr]) -> IHost:
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    config = ConnectionConfig(
        max_connections_per_peer=1,  # default 3 makes every dial wait 250 ms
        min_connections=0,  # below it the auto-connector polls every 10 s
        low_watermark=64,
        high_watermark=192,
        max_connections=256,
    )
    host = new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},  # no plaintext/secio/TLS
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},  # no mplex
        listen_addrs=maddrs,
        connection_config=config,
        # identify (and signed peer records) would advertise /ip4/0.0.0.0:
        # useless to peers, and DCUtR then finds no public address to dial.
        addrs_factory=_expand_wildcards,
    )
    # Our dial race and callers' timeouts decide; no hidden retry backoff.
    host.get_network().retry_config = RetryConfig(max_retries=0)  # type: ignore[attr-defined]
    return host


@asynccontextmanager
async def open_host(
    key_pair: KeyPair,
    listen_addrs: Sequence[str] = ("/ip4/127.0.0.1/tcp/0",),
) -> AsyncIterator[Host]:
    """Run a host listening on ``listen_addrs``; everything stops on exit."""
    _libp2p_patches.apply()
    configure_libp2p_logging()
    try:
        maddrs = [multiaddr.Multiaddr(a) for a in listen_addrs]
    except Exception as e:
        raise ListenError(f"bad listen address: {_short(e)}") from None
    libp2p_host = _build_libp2p_host(key_pair, maddrs)
    try:
        async with libp2p_host.run(listen_addrs=maddrs):
            try:
                network: Any = libp2p_host.get_network()
                failed = [str(m) for m in maddrs if str(m) not in network.listeners]
                if failed:
                    raise ListenError(f"could not listen on {', '.join(failed)}")
                # We connect to the peers we need; never dial the whole peerstore.
                await network.auto_connector.stop()
                yield Host(libp2p_host)
            finally:
                with trio.CancelScope(shield=True):
                    with trio.move_on_after(_CLOSE_TIMEOUT):
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


def _sole_exception(exc: BaseException) -> BaseException | None:
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc
