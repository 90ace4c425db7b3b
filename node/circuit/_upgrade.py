"""Turn a relayed stream into a normal connection of our host.

After ``STATUS: OK`` the HOP (dialer) or STOP (target) stream carries the
relayed connection. The host façade (``Host.upgrade_relayed``) runs the
swarm's own upgrade (Noise, then yamux) over it, as py-libp2p's
``CircuitV2Transport`` does; the swarm then owns the connection, so stream
handlers (the transfer protocol) and ``new_stream`` work over it unchanged,
and its path is ``RELAYED``.
"""

from __future__ import annotations

import trio

from p2pshare.node.host import Connection, Host, LibP2PByteStream
from p2pshare.sharecode import multiaddrs as addrs

__all__ = ["upgrade_relayed", "circuit_multiaddr"]

UPGRADE_TIMEOUT = 15.0


def circuit_multiaddr(relay_peer_id: str, peer_id: str) -> str:
    return addrs.circuit_multiaddr(f"/p2p/{relay_peer_id}", peer_id)


async def upgrade_relayed(
    host: Host, stream: LibP2PByteStream, relay_peer_id: str, peer_id: str, *, initiator: bool
) -> Connection:
    """Secure and multiplex ``stream``; return the connection to ``peer_id``.

    Noise proves the remote identity; a target that turns out to be someone
    other than ``peer_id`` (a lying relay) is refused.
    """
    ma = circuit_multiaddr(relay_peer_id, peer_id)
    with trio.fail_after(UPGRADE_TIMEOUT):
        return await host.upgrade_relayed(stream, ma, peer_id, initiator=initiator)
