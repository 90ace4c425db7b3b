"""Connections and streams of the host façade (``node/host.py`` re-exports them).

Typed views of py-libp2p's swarm connections and streams: :class:`Connection`
(path, direction, stream count, close), :class:`ConnectionEvent` and
:class:`LibP2PByteStream` (a ``transfer.stream.ByteStream``). No py-libp2p
import at module level: the few names needed at run time come through a lazy
proxy that installs the lean import first (see ``_libp2p_records.load``).
"""

from __future__ import annotations

import enum
import importlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import multiaddr
import trio

from p2pshare.errors import LocalError, P2PShareError, RemoteError
from p2pshare.sharecode.multiaddrs import IpClass, ip_class, ip_group

from . import _libp2p_records
from .dialfail import DialFailure
from .events import ConnectionPath

if TYPE_CHECKING:
    from libp2p.abc import INetStream

    from . import _libp2p_impl as impl
else:

    class _Lazy:
        """``_libp2p_impl``, imported on first use, after the lean import."""

        def __getattr__(self, name: str) -> Any:
            _libp2p_records.load()
            module = importlib.import_module("p2pshare.node._libp2p_impl")
            return getattr(module, name)

    impl = _Lazy()

__all__ = [
    "parse_addr",
    "parse_peer_id",
    "sole_exception",
    "HostError",
    "ListenError",
    "DialError",
    "StreamError",
    "ProtocolRefused",
    "Direction",
    "Connection",
    "ConnectionEvent",
    "LibP2PByteStream",
    "impl",
    "short_error",
]

logger = logging.getLogger(__name__)


class HostError(P2PShareError):
    """A failure of the libp2p host; ``str()`` is one line."""


class ListenError(HostError, LocalError, OSError):
    """A listen address could not be bound (an ``OSError``, as binds are)."""


class DialError(HostError, RemoteError, ConnectionError):
    """The peer could not be reached or authenticated in time; ``failures``
    keeps each address's failure, typed (empty where none was dialled)."""

    def __init__(self, message: str, failures: Sequence[DialFailure] = ()) -> None:
        super().__init__(message)
        self.failures: tuple[DialFailure, ...] = tuple(failures)


class StreamError(HostError, RemoteError, ConnectionError):
    """The stream was reset, or its connection broke."""


class ProtocolRefused(StreamError):
    """The peer does not speak the stream's protocol (multistream-select
    answered ``na``): the address names the wrong kind of node, such as a
    ``--relay`` that is no relay. Streams open lazily, so this comes at the
    first read, not at the open."""

    def __init__(self, peer_id: str, protocol: str) -> None:
        super().__init__(f"{peer_id} does not speak {protocol}")
        self.peer_id = peer_id
        self.protocol = protocol


def _refused_protocol(exc: BaseException) -> str | None:
    """The protocol a listener answered "na" to, from ``_libp2p_speed``'s
    refusals anywhere in ``exc``'s first few causes (py-libp2p wraps them)."""
    cur: BaseException | None = exc
    for _ in range(4):
        if cur is None:
            return None
        refused = getattr(cur, "refused_protocol", None)
        if isinstance(refused, str) and refused:
            return refused
        # The context only where it was not suppressed: a reset raised while
        # handling a refusal is a reset.
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return None


def stream_error(peer_id: str, doing: str, exc: BaseException) -> StreamError:
    """The error a failed open (``doing``: the protocol), read (``from``) or
    write (``to``) of a stream with ``peer_id`` raises."""
    refused = _refused_protocol(exc)
    if refused is not None:
        return ProtocolRefused(peer_id, refused)
    if doing in ("from", "to"):
        return StreamError(f"stream {doing} {peer_id} broke: {short_error(exc)}")
    return StreamError(f"cannot open {doing} stream to {peer_id}: {short_error(exc)}")


def short_error(exc: BaseException) -> str:
    """One line naming the innermost cause, for error messages."""
    seen: list[str] = []
    cur: BaseException | None = exc
    while cur is not None and len(seen) < 4:
        text = str(cur).strip().splitlines()[0] if str(cur).strip() else ""
        seen.append(f"{type(cur).__name__}: {text}" if text else type(cur).__name__)
        cur = cur.__cause__ or cur.__context__
    return seen[-1] if len(seen) == 1 else f"{seen[0]} ({seen[-1]})"


class Direction(str, enum.Enum):
    """Which side dialled (as py-libp2p's swarm recorded it)."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    UNKNOWN = "unknown"


class Connection:
    """One live (or just closed) connection to a peer; wraps a swarm connection.

    Equal (and hashable) by the underlying connection, so wrappers made at
    different times for the same connection compare equal.
    """

    __slots__ = ("_c", "_punched", "peer_id")

    def __init__(self, conn: Any, *, punched: bool = False) -> None:
        self._c = conn
        self._punched = punched
        muxed = getattr(conn, "muxed_conn", conn)
        self.peer_id: str = muxed.peer_id.to_base58()

    def _muxed(self) -> Any:
        return getattr(self._c, "muxed_conn", self._c)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Connection) and other._muxed() is self._muxed()

    def __hash__(self) -> int:
        return id(self._muxed())

    def __repr__(self) -> str:
        return f"<Connection {self.path.value} {self.direction.value} to {self.peer_id}>"

    @property
    def path(self) -> ConnectionPath:
        """RELAYED for ``/p2p-circuit``; HOLE_PUNCHED for a socket DCUtR punched
        and this host upgraded (a peer's own dial during a punch round is DIRECT)."""
        if impl.is_relayed(self._c):
            return ConnectionPath.RELAYED
        return ConnectionPath.HOLE_PUNCHED if self._punched else ConnectionPath.DIRECT

    @property
    def direction(self) -> Direction:
        d = getattr(self._c, "direction", None)
        text = str(getattr(d, "name", d)).lower()
        if "inbound" in text:
            return Direction.INBOUND
        if "outbound" in text:
            return Direction.OUTBOUND
        return Direction.UNKNOWN

    @property
    def stream_count(self) -> int:
        try:
            return len(self._c.get_streams())
        except Exception:
            return 0

    @property
    def is_closed(self) -> bool:
        for obj in (self._c, self._muxed()):
            state = getattr(obj, "is_closed", False)
            if state() if callable(state) else state:
                return True
        return False

    def remote_address(self) -> tuple[str, int] | None:
        """The transport address of the peer (None over a relay)."""
        try:
            addr = self._muxed().get_remote_address()
            return (str(addr[0]), int(addr[1])) if addr else None
        except Exception:
            return None

    def source_group(self) -> str | None:
        """What the peer counts as for per-source limits: its address group
        (``sharecode.multiaddrs.ip_group``: the IPv4 address, the IPv6 /64).
        None over a relay (the address there is the relay's, and one cap for
        every relayed peer would let a few circuits shut out all the others;
        the relay bounds its circuits per source itself) and on loopback
        (this machine, as the resource manager also counts it)."""
        addr = self.remote_address()
        if addr is None or ip_class(addr[0]) is IpClass.LOOPBACK:
            return None
        return ip_group(addr[0])

    def local_port(self) -> int | None:
        """Our local TCP port (None when not a plain TCP connection)."""
        obj = self._muxed()
        for attr in ("secured_conn", "conn", "conn", "stream", "stream"):
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        sock = getattr(obj, "socket", None)
        try:
            return int(sock.getsockname()[1]) if sock is not None else None
        except (OSError, AttributeError, TypeError, IndexError):
            return None

    async def wait_closed(self) -> None:
        event = getattr(self._c, "event_closed", None)
        if event is not None:
            await event.wait()
            return
        while not self.is_closed:  # pragma: no cover - every swarm connection has the event
            await trio.sleep(0.5)

    async def close(self) -> None:
        """Close the connection; never raises (it may be gone already)."""
        with trio.CancelScope(shield=True):
            try:
                await self._c.close()
            except Exception:
                pass


@dataclass(frozen=True)
class ConnectionEvent:
    """A connection opened or closed (``path`` as it was when it happened)."""

    opened: bool
    peer_id: str
    path: ConnectionPath
    connection: Connection


class LibP2PByteStream:
    """A libp2p stream as a ``transfer.stream.ByteStream``."""

    def __init__(self, net_stream: INetStream, *, bulk: bool = False) -> None:
        self._s = net_stream
        if bulk:
            self.start_bulk()
        peer = net_stream.muxed_conn.peer_id
        self.remote_peer_id: str = peer.to_base58()
        self.remote_peer_id_bytes: bytes = peer.to_bytes()
        self.protocol: str = str(net_stream.get_protocol() or "")
        self._write_closed = False
        self._reset = False

    def start_bulk(self) -> None:
        """Our protocol starts moving bulk data into this stream: from its next
        read on it may be granted the large receive window (``_libp2p_speed``
        P7; an inbound stream only with the memory reserved, ``_libp2p_rcmgr``).

        Until then it keeps yamux's initial 256 KiB, and an inbound one books
        no more: a stream that carries a request and then idles (a HOP
        handshake, a circuit nobody uses) cannot take a protocol's memory
        budget from the streams that need it. Streams we open are bulk from
        the start (``Host.open_stream``: we read the answers we asked for).
        """
        muxed = getattr(self._s, "muxed_stream", None)
        if muxed is not None and hasattr(muxed, "__dict__"):
            muxed.__dict__["_p2ps_bulk"] = True

    @property
    def net_stream(self) -> INetStream:
        """The underlying py-libp2p stream (for the façade and tests)."""
        return self._s

    @property
    def connection(self) -> Connection:
        """The connection this stream runs on."""
        return Connection(getattr(self._s, "swarm_conn", None) or self._s.muxed_conn)

    async def read(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` only at end of stream."""
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        try:
            return bytes(await self._s.read(max_bytes))
        except impl.StreamEOF:
            # py-libp2p's yamux drops a stream's state when a RST arrives and
            # then reports EOF: tell a reset apart from a clean end here.
            if getattr(getattr(self._s, "muxed_stream", None), "reset_received", False):
                raise StreamError(f"stream from {self.remote_peer_id} was reset") from None
            return b""
        except Exception as e:
            raise stream_error(self.remote_peer_id, "from", e) from e

    async def read_pieces(self, max_bytes: int) -> list[bytes | memoryview]:
        """Up to ``max_bytes`` bytes as read-only pieces, in order (``[]``
        only at end of stream): the received frames' bodies as they are
        kept, without the copy that joining them into one ``bytes`` costs
        (issue 12); the same errors as :meth:`read`."""
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        from . import _libp2p_streambuf  # py-libp2p is loaded: this stream exists

        try:
            pieces = await _libp2p_streambuf.read_pieces(self._s, max_bytes)
        except Exception as e:
            raise stream_error(self.remote_peer_id, "from", e) from e
        if pieces is not None:
            return pieces
        data = await self.read(max_bytes)
        return [data] if data else []

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``: whole to the patched yamux writer (it frames
        and batches any buffer without copying it), else in ``bytes`` pieces
        of one yamux frame per Noise message (what stock yamux expects)."""
        from . import _libp2p_patches  # imported by open_host already

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
            raise stream_error(self.remote_peer_id, "to", e) from e

    async def write_whole(self, data: bytes) -> None:
        """Hand ``data`` to the muxer in one call (it cuts the frames); errors
        are py-libp2p's own. For the relay's pump, which wraps them itself."""
        await self._s.write(data)

    async def close_write(self) -> None:
        """Half-close: the peer reads EOF after what was written."""
        if self._write_closed or self._reset:
            return
        self._write_closed = True
        try:
            await cast(Any, self._s).close_write()  # NetStream has it; INetStream not
        except Exception as e:
            raise StreamError(f"closing stream to {self.remote_peer_id}: {short_error(e)}") from e

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


def parse_peer_id(peer_id: str) -> Any:
    try:
        return impl.ID.from_base58(peer_id)
    except Exception:
        raise DialError(f"bad peer ID {peer_id[:64]!r}") from None


def parse_addr(addr: str, peer_id: Any) -> multiaddr.Multiaddr:
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


def sole_exception(exc: BaseException) -> BaseException | None:
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc
