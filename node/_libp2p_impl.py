"""py-libp2p's connection layer behind the host façade (``node/host.py``).

Every runtime import of py-libp2p that the façade needs lives here (and in
the patch and lean-import modules). Nothing imports this module directly:
``node/host.py`` reaches it through a lazy proxy that installs the lean
import first, so importing any p2pshare module leaves py-libp2p untouched
until a host is opened or a key is made.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.connection_types import ConnectionType
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.io.trio import TrioTCPStream
from libp2p.kad_dht.common import PROTOCOL_ID as KAD_PROTOCOL_ID
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.network.config import ConnectionConfig
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.peer.peerstore import env_to_send_in_RPC
from libp2p.records.validator import NamespacedValidator
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from multiaddr.utils import get_network_addrs

from p2pshare.sharecode.multiaddrs import IpClass, ip_class, ip_text, unspecified_host

from . import _libp2p_patches, _libp2p_rcmgr
from ._libp2p_close import close_swarm_conn
from ._libp2p_speed import LAZY_STREAM
from .rcmgr import DEFAULT_LIMITS, Limits, ResourceManager

__all__ = [
    "ID",
    "IHost",
    "INetStream",
    "KadTable",
    "StreamEOF",
    "TProtocol",
    "build_host",
    "configure_logging",
    "expand_wildcard",
    "is_inbound",
    "is_relayed",
    "new_kad_dht",
    "relayed_raw_connection",
    "signed_peer_record",
    "tcp_raw_connection",
    "tcp_listen_sockets",
    "upgrade_raw",
    "ConnNotifee",
    "StreamIO",
    "mark_relayed",
]

# Loggers that report normal events (peer EOF, cancelled dials) at WARNING or
# ERROR; they are capped at CRITICAL/ERROR unless LIBP2P_DEBUG asks otherwise.
_NOISY_LOGGERS = {
    "libp2p.kad_dht": logging.ERROR,  # "Failed to read DHT message" on every EOF
    # [ADDCONN_FAIL] on cancelled dial races; "failed to upgrade security"
    # for every stranger's or punch attempt's failed handshake (issue 10:
    # routine failures print no ERROR lines; LIBP2P_DEBUG=1 shows them).
    "libp2p.network.swarm": logging.CRITICAL,
    "libp2p.host.basic_host": logging.CRITICAL,  # multi-line error we re-raise
    "libp2p.stream_muxer.yamux.yamux": logging.CRITICAL,  # peer vanished mid-frame
    "libp2p.transport.tcp.tcp": logging.CRITICAL,  # refused dials we re-raise
    "libp2p.identity.identify": logging.ERROR,
    "libp2p.protocol_muxer": logging.CRITICAL,  # failed negotiations we re-raise
    "libp2p.network.auto_connector": logging.WARNING,  # sets itself to INFO
}


def configure_logging() -> None:
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


# -- host -----------------------------------------------------------------------


def expand_wildcard(maddr: multiaddr.Multiaddr) -> list[str]:
    """``/ip4/0.0.0.0/...`` as one address per local interface (and loopback)."""
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


def _expand_wildcards(addrs: list[multiaddr.Multiaddr]) -> list[multiaddr.Multiaddr]:
    out: list[multiaddr.Multiaddr] = []
    for maddr in addrs:
        out.extend(multiaddr.Multiaddr(a) for a in expand_wildcard(maddr))
    return out


def build_host(key_pair: KeyPair, maddrs: list[multiaddr.Multiaddr], limits: Limits | None = None) -> IHost:
    """A Noise-only, yamux-only host with one connection per peer."""
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    extras: list[multiaddr.Multiaddr] = []

    def announce(addrs: list[multiaddr.Multiaddr]) -> list[multiaddr.Multiaddr]:
        """What identify and our signed peer record announce: concrete
        addresses, no loopback or link-local unless that is all we have
        (a peer elsewhere would dial its own loopback), then the circuit
        addresses of our relay reservations (``announce_also``)."""
        expanded = _expand_wildcards(addrs)
        wide = [m for m in expanded if ip_class(ip_text(str(m)) or "") not in (IpClass.LOOPBACK, IpClass.LINK_LOCAL)]
        return (wide or expanded) + extras

    config = ConnectionConfig(
        max_connections_per_peer=1,  # default 3 makes every dial wait 250 ms
        min_connections=0,  # below it the auto-connector polls every 10 s
        low_watermark=64,
        high_watermark=192,
        # Above the resource manager's inbound limit (node/rcmgr), which decides.
        max_connections=DEFAULT_LIMITS.system.conns + 128,
    )
    host = new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},  # no plaintext/secio/TLS
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},  # no mplex
        listen_addrs=maddrs,
        connection_config=config,
        # identify (and signed peer records) would advertise /ip4/0.0.0.0:
        # useless to peers, and DCUtR then finds no public address to dial.
        addrs_factory=announce,
    )
    host._p2ps_announce_extra = extras  # type: ignore[attr-defined]  # see announce_also
    # Our dial race and callers' timeouts decide; no hidden retry backoff.
    _libp2p_patches.no_dial_retries(host.get_network())
    # py-libp2p 0.8.1 attaches a resource manager of its own by default (256
    # established inbound connections, its own stream and memory rules):
    # measured, it capped a node at 256 concurrent peers whatever ours said.
    # One resource manager, ours (node/rcmgr), decides.
    network: Any = host.get_network()
    network.set_resource_manager(None)
    _libp2p_rcmgr.attach(network, ResourceManager(limits or DEFAULT_LIMITS))
    # The peerstore's eviction (``_libp2p_fixes.peer_limit_keeps_self``) keeps
    # the peers we are connected to: it reads the swarm's connection table.
    host.get_peerstore()._p2ps_connections = network.connections  # type: ignore[attr-defined]
    return host


# -- connections ----------------------------------------------------------------


def tcp_listen_sockets(host: IHost) -> list[tuple[str, int]]:
    """The host's bound TCP listen sockets as (ip, port); wildcards kept."""
    out: list[tuple[str, int]] = []
    for maddr in host.get_transport_addrs():
        try:
            ip = maddr.value_for_protocol("ip4") or maddr.value_for_protocol("ip6")
        except Exception:
            try:
                ip = maddr.value_for_protocol("ip6")
            except Exception:
                continue
        try:
            port = int(maddr.value_for_protocol("tcp"))
        except Exception:
            continue
        out.append((str(ip), port))
    return out


async def upgrade_raw(
    host: IHost, raw: Any, expected: ID, addr: multiaddr.Multiaddr, *, initiator: bool, what: str
) -> Any:
    """Secure and multiplex ``raw`` (Noise initiator or responder) and return
    the swarm connection; a remote that is not ``expected`` is refused and
    closed. For connections we did not dial: punched sockets, circuits."""
    if initiator:
        conn: Any = await host.upgrade_outbound_connection(raw, expected)
        muxed = conn.muxed_conn
    else:
        muxed = await host.upgrade_inbound_connection(raw, addr)
        conn = None
    if muxed.peer_id != expected:
        with trio.CancelScope(shield=True):
            await muxed.close()
        raise ConnectionError(f"{what} reached {muxed.peer_id}, not {expected.to_base58()}")
    if conn is None:
        conn = next(
            (c for c in host.get_network().get_connections(expected) if getattr(c, "muxed_conn", None) is muxed),
            None,
        )
    if conn is None:
        with trio.CancelScope(shield=True):
            await muxed.close()
        raise ConnectionError(f"{what} was not kept by the swarm")
    return conn


def is_relayed(conn: Any) -> bool:
    """A swarm connection through a circuit relay.

    The relay client marks the swarm connection RELAYED once the upgrade
    returns; the raw connection under it says so from the start."""
    muxed = getattr(conn, "muxed_conn", None)
    for obj in (conn, muxed, getattr(muxed, "secured_conn", None)):
        try:
            if obj is not None and obj.get_connection_type() == ConnectionType.RELAYED:
                return True
        except Exception:
            continue
    return False


def is_inbound(conn: Any) -> bool:
    d = getattr(conn, "direction", None)
    return "inbound" in str(getattr(d, "name", d)).lower()


_READ_AHEAD = 1 << 20
#: Reads at least this large (P1's batched Noise reads: 256 KiB) go to the
#: outer stream as they are.
_BULK_READ = 64 << 10


class StreamIO:
    """A libp2p stream as the ReadWriteCloser under a relayed RawConnection.

    Small reads (the Noise handshake's exact reads: a 2-byte length, then the
    body) are served from one read-ahead of whatever the outer muxer has
    buffered. A bulk read, with nothing read ahead, is the outer stream's
    read of that size: its one copy (yamux joining its frames) is the only
    one. Serving 256 KiB reads from a 1 MiB read-ahead cost three more per
    byte on a relayed receiver (append, slice, and the shift after it). Writes
    go to the outer stream whole: the (patched) outer yamux cuts a batch of
    inner Noise messages into frames that each fill one outer Noise message.
    """

    def __init__(self, stream: INetStream) -> None:
        self._s = stream
        self._buf = bytearray()

    async def read(self, n: int | None = None) -> bytes:
        if not self._buf:
            if n is not None and n >= _BULK_READ:
                return bytes(await self._s.read(n))
            data = await self._s.read(_READ_AHEAD)
            if n is None or n < 0 or len(data) <= n:
                return bytes(data)
            self._buf += data
        if n is None or n < 0 or n >= len(self._buf):
            out = bytes(self._buf)
            self._buf.clear()
            return out
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def write(self, data: bytes) -> None:
        await self._s.write(data)  # whole: the outer muxer cuts its own frames

    async def close(self) -> None:
        await self._s.close()

    def get_remote_address(self) -> tuple[str, int] | None:
        return None


def relayed_raw_connection(io: Any, initiator: bool, addr: multiaddr.Multiaddr) -> Any:
    """A RELAYED raw connection over ``io`` (a read/write/close object)."""
    return RawConnection(io, initiator, ConnectionType.RELAYED, [addr])


def mark_relayed(conn: Any, addr: multiaddr.Multiaddr) -> None:
    try:
        conn.set_transport_info([addr], ConnectionType.RELAYED)
    except Exception:
        pass


def tcp_raw_connection(stream: trio.SocketStream, initiator: bool) -> Any:
    return RawConnection(TrioTCPStream(stream), initiator)


class ConnNotifee(INotifee):
    """Calls ``on_event("opened" | "closed", swarm connection)``, and
    ``on_stream_closed(stream)`` when given; never blocks the swarm (the
    callbacks must not either)."""

    def __init__(
        self, on_event: Callable[[str, Any], None], on_stream_closed: Callable[[Any], None] | None = None
    ) -> None:
        self._on_event = on_event
        self._on_stream_closed = on_stream_closed

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._on_event("opened", conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._on_event("closed", conn)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        # After the swarm connection dropped the stream (its stream count).
        if self._on_stream_closed is not None:
            self._on_stream_closed(stream)

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None


def signed_peer_record(host: IHost) -> bytes:
    """Our signed peer record envelope, as Kademlia requests carry it."""
    return bytes(env_to_send_in_RPC(host)[0])


# -- Kademlia ---------------------------------------------------------------------


class KadTable:
    """What discovery uses of py-libp2p's ``KadDHT``: the routing table and the
    local provider store, with peer IDs as bytes or base58 text."""

    def __init__(self, dht: KadDHT) -> None:
        self.dht = dht
        self._changed = trio.Event()

    def notify_changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        """Until a peer was added to the table (by us or an inbound RPC).

        Returns after 1 s regardless: py-libp2p may change the table on paths
        we do not see (a stock ``add_peer`` when the servers-only patch is off)."""
        with trio.move_on_after(1.0):
            await self._changed.wait()

    def peer_ids(self) -> list[str]:
        return [p.to_base58() for p in self.dht.routing_table.get_peer_ids()]

    def size(self) -> int:
        return int(self.dht.get_routing_table_size())

    def closest(self, key: bytes, count: int) -> list[bytes]:
        return [p.to_bytes() for p in self.dht.routing_table.find_local_closest_peers(key, count)]

    def remove(self, peer: bytes) -> None:
        self.dht.routing_table.remove_peer(ID(peer))

    def ages(self, at_least: float) -> list[tuple[str, float]]:
        """(peer, seconds since seen) of the table's peers not seen (added, or
        re-added when they answered or asked us as servers) for ``at_least``."""
        now = time.time()
        return [
            (peer_id.to_base58(), now - seen)
            for bucket in self.dht.routing_table.buckets
            for peer_id, (_, seen) in bucket.peers.items()
            if now - seen >= at_least
        ]

    async def add(self, peer_id: str, addrs: list[multiaddr.Multiaddr]) -> None:
        info = PeerInfo(ID.from_base58(peer_id), addrs)
        await self.dht.routing_table.add_peer(info, skip_server_mode_check=True)
        self.notify_changed()

    def local_providers(self, key: bytes) -> list[tuple[str, list[str]]]:
        return [(i.peer_id.to_base58(), [str(a) for a in i.addrs]) for i in self.dht.provider_store.get_providers(key)]

    def add_local_provider(self, key: bytes, peer: bytes, addrs: list[str]) -> None:
        self.dht.provider_store.add_provider(key, PeerInfo(ID(peer), [multiaddr.Multiaddr(a) for a in addrs]))

    def drop_local_provider(self, key: bytes, peer_id: str) -> None:
        local = self.dht.provider_store.providers.get(key)
        if local is not None:
            local.pop(peer_id, None)

    def cleanup_expired(self) -> None:
        self.dht.provider_store.cleanup_expired()

    @property
    def server_mode(self) -> bool:
        return bool(self.dht.mode == DHTMode.SERVER)

    async def set_server_mode(self, on: bool) -> None:
        """Serve Kademlia RPCs from now on, or stop. Stopping keeps the table
        (py-libp2p's ``switch_mode`` to client would empty it)."""
        if on and self.dht.mode != DHTMode.SERVER:
            await self.dht.switch_mode(DHTMode.SERVER)
        elif not on and self.dht.mode == DHTMode.SERVER:
            self.dht.mode = DHTMode.CLIENT
            self.dht.host.remove_stream_handler(KAD_PROTOCOL_ID)


def new_kad_dht(host: IHost, *, server_mode: bool, server_protocol: str) -> KadTable:
    """py-libp2p's Kademlia on ``host``, records refused, servers-only table."""
    dht = KadDHT(
        host,
        DHTMode.SERVER if server_mode else DHTMode.CLIENT,
        # No namespace is registered: every PUT_VALUE is refused.
        validator=NamespacedValidator({}, strict_validation=True),
        validator_changed=True,
        strict_validation=True,
        enable_random_walk=False,
    )
    table = KadTable(dht)
    _libp2p_patches.kad_servers_only(dht, host, server_protocol, on_added=table.notify_changed)
    return table


def announce_also(host: IHost, addrs: list[str]) -> None:
    """Announce ``addrs`` (our relayed addresses) besides the listen addresses."""
    extras = getattr(host, "_p2ps_announce_extra", None)
    if extras is None:
        return
    parsed = []
    for a in addrs:
        try:
            parsed.append(multiaddr.Multiaddr(a))
        except Exception:  # noqa: BLE001 - ours, but never worth a crash
            continue
    extras[:] = parsed


async def close_connections_at_once(libp2p_host: IHost) -> None:
    """Close every connection concurrently, before py-libp2p's own close.

    Its ``Swarm.close`` closes them one after another, and each close sleeps
    ~0.2 s (a stream-reset grace, then a notify): a ``get`` that met a relay,
    the sharer and four bootstrap peers exited 1.6 s after its last byte.
    At once, the graces overlap; the swarm's close then finds nothing left.
    A connection whose peer stopped reading is cut after ``POLITE_CLOSE_S``
    (``_libp2p_close.close_swarm_conn``).
    """
    try:
        network: Any = libp2p_host.get_network()
        conns = [c for cs in list(network.connections.values()) for c in list(cs)]
    except Exception:  # a host that never got as far as a swarm
        return
    async with trio.open_nursery() as nursery:
        for conn in conns:
            nursery.start_soon(close_swarm_conn, conn)


async def aclose_quietly(conn: Any) -> None:
    """Close a connection (raw, secured or swarm) that may already be broken."""
    try:
        await conn.close()
    except Exception:  # already broken: nothing left to close
        pass


async def new_stream_lazy(libp2p_host: IHost, peer_id: ID, protocol: str, *, lazy: bool = True) -> INetStream:
    """``new_stream`` with lazy multistream-select for this stream (patch
    ``mss_pipelined``, P9): one round trip less before the first request.
    ``lazy=False`` waits for the protocol's echo: a refusal is then an "na"
    at the open, never a reset that can overtake it (see ``host.open_stream``)."""
    token = LAZY_STREAM.set(protocol if lazy else "")
    try:
        return await libp2p_host.new_stream(peer_id, [TProtocol(protocol)])
    finally:
        LAZY_STREAM.reset(token)
