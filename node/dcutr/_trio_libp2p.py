"""The few py-libp2p connection-layer calls DCUtR needs, in one place.

Like ``node/relay_client/_upgrade.py``: hand a punched TCP socket to the
swarm's own upgrade (Noise, then yamux) in the role the spec assigns, list a
peer's direct and relayed connections, dial one address directly (bypassing
"already connected"), and watch for new relayed connections.
"""

from __future__ import annotations

from typing import Any

import multiaddr
import trio
from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.connection_types import ConnectionType
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.id import ID

from p2pshare.node.host import Host, upgrade_raw_connection
from p2pshare.sharecode.multiaddrs import tcp_multiaddr

__all__ = [
    "upgrade_punched",
    "direct_conns",
    "relayed_conns",
    "dial_direct",
    "RelayedConnWatcher",
    "is_relayed",
    "is_inbound",
    "peerstore_addrs",
    "listen_tcp",
]


def _pid(peer_id: str) -> ID:
    return ID.from_base58(peer_id)


def is_relayed(conn: Any) -> bool:
    try:
        return bool(conn.get_connection_type() == ConnectionType.RELAYED)
    except Exception:
        return False


def is_inbound(conn: Any) -> bool:
    d = getattr(conn, "direction", None)
    return "inbound" in str(getattr(d, "name", d)).lower()


def _live(host: Host, peer_id: str) -> list[Any]:
    conns = host.libp2p.get_network().get_connections(_pid(peer_id))
    return [c for c in conns if not getattr(c, "is_closed", False)]


def direct_conns(host: Host, peer_id: str) -> list[Any]:
    return [c for c in _live(host, peer_id) if not is_relayed(c)]


def relayed_conns(host: Host, peer_id: str) -> list[Any]:
    return [c for c in _live(host, peer_id) if is_relayed(c)]


def stream_count(conn: Any) -> int:
    try:
        return len(conn.get_streams())
    except Exception:
        return 0


def peerstore_addrs(host: Host, peer_id: str) -> list[str]:
    try:
        return [str(a) for a in host.libp2p.get_peerstore().addrs(_pid(peer_id))]
    except Exception:
        return []


def listen_tcp(host: Host) -> list[tuple[str, int]]:
    """Our bound TCP listen sockets as (ip, port); wildcards kept."""
    out: list[tuple[str, int]] = []
    for maddr in host.libp2p.get_transport_addrs():
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


SILENT_PEER_TIMEOUT = 1.0  # seconds a punched responder waits for the initiator's first bytes


async def _peer_speaks_first(sock: trio.socket.SocketType) -> bool:
    """True when the peer sends within SILENT_PEER_TIMEOUT (data is not consumed)."""
    with trio.move_on_after(SILENT_PEER_TIMEOUT):
        await trio.lowlevel.wait_readable(sock.fileno())
        return True
    return False


async def upgrade_punched(host: Host, sock: trio.socket.SocketType, peer_id: str, *, client: bool) -> Any:
    """Secure and multiplex a connected socket as ``client`` (Noise initiator)
    or server; the swarm keeps the connection. Raises ConnectionError when the
    peer is not ``peer_id``."""
    if not client and not await _peer_speaks_first(sock):
        # Nothing from the peer: our SYN reached its *listener* (not a
        # simultaneous open), so it runs as an ordinary responder and waits
        # for us. Both ends waiting would deadlock; take the initiator role.
        client = True
    stream = trio.SocketStream(sock)
    raw = RawConnection(TrioTCPStream(stream), client)
    ip, port = sock.getpeername()[:2]
    maddr = multiaddr.Multiaddr(tcp_multiaddr(ip, port))
    try:
        return await upgrade_raw_connection(host, raw, peer_id, maddr, initiator=client, what="punched connection")
    except BaseException:
        with trio.CancelScope(shield=True):
            try:
                await stream.aclose()
            except Exception:
                pass
        raise


async def dial_direct(host: Host, peer_id: str, addr: str) -> Any:
    """A NEW direct connection to ``addr`` even if a relayed one exists."""
    network: Any = host.libp2p.get_network()
    return await network.dial_addr(multiaddr.Multiaddr(addr), _pid(peer_id))


class RelayedConnWatcher(INotifee):
    """Pushes ``(peer ID, connection)`` for every new connection into a channel
    (never blocks the swarm: a full channel drops the event)."""

    def __init__(self, send: trio.MemorySendChannel[tuple[str, Any]]) -> None:
        self._send = send

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        try:
            self._send.send_nowait((conn.muxed_conn.peer_id.to_base58(), conn))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        return None

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None


def register_watcher(host: Host, watcher: RelayedConnWatcher) -> None:
    host.libp2p.get_network().register_notifee(watcher)


def unregister_watcher(host: Host, watcher: RelayedConnWatcher) -> None:
    network: Any = host.libp2p.get_network()
    try:
        network.remove_notifee(watcher)
    except Exception:
        pass


async def close_conn(conn: Any) -> None:
    with trio.CancelScope(shield=True):
        try:
            await conn.close()
        except Exception:
            pass
