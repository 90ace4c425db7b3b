"""The few connection-layer calls DCUtR needs, in one place, over the host façade.

Hand a punched TCP socket to the host's upgrade (Noise, then yamux) in the
role the spec assigns, list a peer's direct and relayed connections, dial one
address directly (bypassing "already connected"), watch for new
connections (the host's connection events), and wait, woken by the host's
events rather than polling, for a direct connection a punch did not make
or for identify to store a peer's addresses, and close a peer's relayed
connections as their last stream ends.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial

import trio

from p2pshare.node._trio_race import first_of, until
from p2pshare.node.host import Connection, ConnectionEvent, ConnectionPath, Direction, Host

logger = logging.getLogger(__name__)

__all__ = [
    "upgrade_punched",
    "direct_conns",
    "relayed_conns",
    "dialed_via_relay",
    "dial_direct",
    "dial_first",
    "watch_connections",
    "is_relayed",
    "is_inbound",
    "peerstore_addrs",
    "listen_tcp",
    "Ends",
    "socket_ends",
    "conn_ends",
    "wait_direct",
    "wait_addrs",
    "close_idle_relayed",
]

#: A TCP connection's (local port, (remote IP, remote port)).
Ends = tuple[int, tuple[str, int]]


def is_relayed(conn: Connection) -> bool:
    return conn.path is ConnectionPath.RELAYED


def is_inbound(conn: Connection) -> bool:
    return conn.direction is Direction.INBOUND


def direct_conns(host: Host, peer_id: str) -> list[Connection]:
    return [c for c in host.connections(peer_id) if not is_relayed(c)]


def relayed_conns(host: Host, peer_id: str) -> list[Connection]:
    return [c for c in host.connections(peer_id) if is_relayed(c)]


def dialed_via_relay(host: Host, peer_id: str) -> bool:
    """Did we open a relayed connection to ``peer_id`` (DCUtR's A, which
    answers the rounds the peer it dialed starts)?"""
    return any(is_relayed(c) and not is_inbound(c) for c in host.connections(peer_id))


def stream_count(conn: Connection) -> int:
    return conn.stream_count


def peerstore_addrs(host: Host, peer_id: str) -> list[str]:
    return host.peer_addrs(peer_id)


def listen_tcp(host: Host) -> list[tuple[str, int]]:
    """Our bound TCP listen sockets as (ip, port); wildcards kept."""
    return host.listen_tcp()


SILENT_PEER_TIMEOUT = 1.0  # seconds a punched responder waits for the initiator's first bytes


async def _peer_speaks_first(sock: trio.socket.SocketType) -> bool:
    """True when the peer sends within SILENT_PEER_TIMEOUT (data is not consumed)."""
    with trio.move_on_after(SILENT_PEER_TIMEOUT):
        await trio.lowlevel.wait_readable(sock.fileno())
        return True
    return False


async def upgrade_punched(host: Host, sock: trio.socket.SocketType, peer_id: str, *, client: bool) -> Connection:
    """Secure and multiplex a connected socket as ``client`` (Noise initiator)
    or server; the swarm keeps the connection. Raises ConnectionError when the
    peer is not ``peer_id``."""
    if not client and not await _peer_speaks_first(sock):
        # Nothing from the peer: our SYN reached its *listener* (not a
        # simultaneous open), so it runs as an ordinary responder and waits
        # for us. Both ends waiting would deadlock; take the initiator role.
        client = True
    return await host.upgrade_punched(sock, peer_id, initiator=client)


async def dial_direct(host: Host, peer_id: str, addr: str) -> Connection:
    """A NEW direct connection to ``addr`` even if a relayed one exists."""
    return await host.dial_direct(peer_id, addr)


async def dial_first(host: Host, peer_id: str, addrs: Sequence[str], until: float) -> str | None:
    """Dial up to four of ``addrs`` at once until one connects or ``until``;
    the address that made a direct connection, or None."""
    won: list[str] = []

    async def one(addr: str, cancel: trio.CancelScope) -> None:
        try:
            await dial_direct(host, peer_id, addr)
        except Exception as e:
            logger.debug("dcutr: direct dial %s failed: %s", addr, e)
            return
        won.append(addr)
        cancel.cancel()

    with trio.move_on_at(until):
        async with trio.open_nursery() as nursery:
            for addr in addrs[:4]:
                nursery.start_soon(one, addr, nursery.cancel_scope)
    return won[0] if won and direct_conns(host, peer_id) else None


@asynccontextmanager
async def watch_connections(host: Host) -> AsyncIterator[trio.MemoryReceiveChannel[tuple[str, Connection]]]:
    """``(peer ID, connection)`` for every new connection, while the block runs."""
    send, recv = trio.open_memory_channel[tuple[str, Connection]](64)
    async with host.connection_events() as events, trio.open_nursery() as nursery:

        async def forward() -> None:
            async with send:
                async for event in events:
                    if event.opened:
                        try:  # a full channel drops the event, as before
                            send.send_nowait((event.peer_id, event.connection))
                        except trio.WouldBlock:
                            pass

        nursery.start_soon(forward)
        try:
            yield recv
        finally:
            nursery.cancel_scope.cancel()


async def close_conn(conn: Connection) -> None:
    await conn.close()


def socket_ends(sock: trio.socket.SocketType) -> Ends | None:
    """A connected socket's :data:`Ends` (None when it has none)."""
    try:
        return int(sock.getsockname()[1]), (str(sock.getpeername()[0]), int(sock.getpeername()[1]))
    except (OSError, IndexError, TypeError, ValueError):
        return None


def conn_ends(conn: Connection) -> Ends | None:
    """A plain TCP connection's :data:`Ends` (None over a relay): those of
    its socket, so a connection made from a punched socket has that socket's."""
    port, remote = conn.local_port(), conn.remote_address()
    return None if port is None or remote is None else (port, remote)


async def wait_direct(host: Host, peer_id: str, ours: Callable[[], Ends | None] = lambda: None) -> None:
    """Return once ``peer_id`` has a direct connection other than the one on
    the socket whose ends ``ours()`` gives (at once if it has). Woken by the
    host's connection events; the caller's cancel scope is the deadline."""

    def other() -> bool:
        mine = ours()
        return any(mine is None or conn_ends(c) != mine for c in direct_conns(host, peer_id))

    async with host.connection_events() as events:  # subscribe, then look
        await until(events.receive, other)


async def wait_addrs(host: Host, peer_id: str) -> None:
    """Return once the peerstore holds addresses for ``peer_id`` (at once if
    it does). Woken when identify stores them; the caller bounds the wait."""
    async with host.identify_events() as events:  # subscribe, then look
        await until(events.receive, lambda: bool(peerstore_addrs(host, peer_id)))


async def close_idle_relayed(host: Host, peer_id: str) -> None:
    """While ``peer_id`` has a direct connection, close each relayed one that
    carries no stream; return once none is left or no direct one is.

    Woken by the host's events about the peer: a stream closed (the swarm
    tells it once the stream left its connection's count), a connection
    opened or closed. The caller's cancel scope is the deadline."""
    async with host.connection_events() as conns, host.stream_closed_events() as streams:
        while (relayed := relayed_conns(host, peer_id)) and direct_conns(host, peer_id):
            closed = False
            for conn in relayed:
                if stream_count(conn) == 0:
                    await close_conn(conn)
                    closed = True
            # A close awaits and changes the list: list again after one (with none, nothing awaited).
            if not closed or relayed_conns(host, peer_id):
                await first_of(partial(_next_about, peer_id, conns), partial(_next_about, peer_id, streams))


async def _next_about(
    peer_id: str, events: trio.MemoryReceiveChannel[ConnectionEvent] | trio.MemoryReceiveChannel[str]
) -> None:
    """Return at the next event about ``peer_id`` (a peer ID or a connection event)."""
    async for event in events:
        if (event if isinstance(event, str) else event.peer_id) == peer_id:
            return
