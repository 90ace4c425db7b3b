"""The host façade's event streams (``Host.connection_events``, ``Host.identify_events``).

Connections opened and closed, and streams closed, come from a swarm notifee
(``_libp2p_impl.ConnNotifee``: py-libp2p's public ``INotifee``, no patch);
peers whose identify answer or push was just
stored come from the identify patch's listeners (``_libp2p_identify``). The
swarm never waits for a subscriber: events beyond a generous buffer are
dropped, so a subscriber re-checks the state it waits for on every event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import trio

from . import _libp2p_identify as _identify
from ._libp2p_conn import Connection, ConnectionEvent
from ._libp2p_conn import impl as _impl

if TYPE_CHECKING:
    from libp2p.abc import IHost

__all__ = ["connection_events", "identify_events", "stream_closed_events"]

logger = logging.getLogger(__name__)

# Events buffered per subscriber; beyond it events are dropped.
_EVENT_BUFFER = 1024
_DROPPED = (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError)


@asynccontextmanager
async def connection_events(
    libp2p: IHost, wrap: Callable[[Any], Connection]
) -> AsyncIterator[trio.MemoryReceiveChannel[ConnectionEvent]]:
    """Connections opened and closed, from now until the block exits."""
    send, recv = trio.open_memory_channel[ConnectionEvent](_EVENT_BUFFER)

    def on_event(kind: str, conn: Any) -> None:
        try:
            wrapped = wrap(conn)
            send.send_nowait(ConnectionEvent(kind == "opened", wrapped.peer_id, wrapped.path, wrapped))
        except _DROPPED:
            logger.debug("connection event dropped")
        except Exception as e:  # a half-built connection: nothing to report
            logger.debug("connection event unreadable: %s", e)

    with _notified(libp2p, _impl.ConnNotifee(on_event)), send, recv:
        yield recv


@asynccontextmanager
async def stream_closed_events(libp2p: IHost) -> AsyncIterator[trio.MemoryReceiveChannel[str]]:
    """Peer IDs one of whose streams (on any connection) just closed or was
    reset, from now until the block exits. The swarm tells it after the
    stream left its connection, so the connection's stream count is lower."""
    send, recv = trio.open_memory_channel[str](_EVENT_BUFFER)

    def on_stream_closed(stream: Any) -> None:
        try:
            send.send_nowait(stream.muxed_conn.peer_id.to_base58())
        except _DROPPED:
            logger.debug("stream event dropped")
        except Exception as e:  # a half-built stream: nothing to report
            logger.debug("stream event unreadable: %s", e)

    with _notified(libp2p, _impl.ConnNotifee(lambda _kind, _conn: None, on_stream_closed)), send, recv:
        yield recv


@contextmanager
def _notified(libp2p: IHost, notifee: Any) -> Iterator[None]:
    """``notifee`` registered with the swarm while the block runs."""
    network: Any = libp2p.get_network()
    network.register_notifee(notifee)
    try:
        yield
    finally:
        try:
            network.remove_notifee(notifee)
        except Exception:
            pass


@asynccontextmanager
async def identify_events(libp2p: IHost) -> AsyncIterator[trio.MemoryReceiveChannel[str]]:
    """Peer IDs whose identify answer or push this host's peerstore has just
    stored (addresses, protocols), from now until the block exits."""
    send, recv = trio.open_memory_channel[str](_EVENT_BUFFER)
    store = libp2p.get_peerstore()

    def on_stored(peerstore: Any, peer_id: Any) -> None:
        if peerstore is not store:
            return  # another host of this process
        try:
            send.send_nowait(peer_id.to_base58())
        except _DROPPED:
            logger.debug("identify event dropped")

    _identify.add_stored_listener(on_stored)
    try:
        with recv:
            yield recv
    finally:
        _identify.remove_stored_listener(on_stored)
        send.close()
