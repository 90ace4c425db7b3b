"""Turn a relayed stream into a normal py-libp2p connection.

After ``STATUS: OK`` the HOP (dialer) or STOP (target) stream carries the
relayed connection. We wrap it as a py-libp2p ``RawConnection`` of type
RELAYED and run the swarm's own upgrade (Noise, then yamux) over it, as
py-libp2p's ``CircuitV2Transport`` does; the swarm then owns the connection,
so stream handlers (the transfer protocol) and ``new_stream`` work over it
unchanged, and ``Host.connection_path`` reports ``"relayed"``.

This is the one place outside ``node/host.py`` that touches py-libp2p's
connection layer (swarm upgrade and ``SwarmConn.set_transport_info``).
"""

from __future__ import annotations

from typing import Any

import multiaddr
import trio
from libp2p.abc import INetStream
from libp2p.connection_types import ConnectionType
from libp2p.network.connection.raw_connection import RawConnection

from p2pshare.node.host import Host, upgrade_raw_connection
from p2pshare.sharecode import multiaddrs as addrs

__all__ = ["upgrade_relayed", "circuit_multiaddr"]

_READ_AHEAD = 1 << 20
UPGRADE_TIMEOUT = 15.0


class _StreamIO:
    """A libp2p stream as the ReadWriteCloser under a RawConnection.

    Reads fetch whatever the outer muxer has buffered and serve Noise's small
    exact reads from it (Noise reads a 2-byte length, then the body). Writes
    go to the outer stream whole: the (patched) outer yamux cuts a batch of
    inner Noise messages into frames that each fill one outer Noise message.
    """

    def __init__(self, stream: INetStream) -> None:
        self._s = stream
        self._buf = bytearray()

    async def read(self, n: int | None = None) -> bytes:
        if not self._buf:
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


def circuit_multiaddr(relay_peer_id: str, peer_id: str) -> multiaddr.Multiaddr:
    return multiaddr.Multiaddr(addrs.circuit_multiaddr(f"/p2p/{relay_peer_id}", peer_id))


async def upgrade_relayed(host: Host, stream: INetStream, relay_peer_id: str, peer_id: str, *, initiator: bool) -> Any:
    """Secure and multiplex ``stream``; return the swarm connection to ``peer_id``.

    Noise proves the remote identity; a target that turns out to be someone
    other than ``peer_id`` (a lying relay) is refused.
    """
    ma = circuit_multiaddr(relay_peer_id, peer_id)
    raw = RawConnection(_StreamIO(stream), initiator, ConnectionType.RELAYED, [ma])  # type: ignore[arg-type]
    with trio.fail_after(UPGRADE_TIMEOUT):
        conn = await upgrade_raw_connection(host, raw, peer_id, ma, initiator=initiator, what="relayed connection")
    try:
        conn.set_transport_info([ma], ConnectionType.RELAYED)
    except Exception:
        pass
    return conn
