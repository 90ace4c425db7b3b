"""Closing a connection without upstream's two 0.1 s sleeps (replacement
functions for py-libp2p 0.8.1, issue 12).

Registered, fingerprinted and applied in ``_libp2p_patches.PATCHES``.

Upstream ``SwarmConn.close`` ends in ``_cleanup``, which closes the muxer
(``Yamux.close`` ends with ``await trio.sleep(0.1)``), resets the streams
and sleeps 0.1 s again so the streams' handlers "process the reset" before
the disconnect is announced. Each is a fixed wait, serial, in every close:
every ``get`` printed its result 0.2 s after the transfer had ended (a
1-byte ``get`` on loopback took 0.85 s, of which 0.2 s was these sleeps),
and a relayed or hole-punched dial that replaces a connection paid them
too. A handler woken by a reset needs a scheduling round, not 100 ms: each
sleep becomes ``trio.sleep(0)``, a checkpoint that lets every task already
woken run. Everything else is upstream's code, in upstream's order.

Also here: :func:`close_swarm_conn`, the host's close of one connection,
which does not wait on a peer that stopped reading.
"""

from __future__ import annotations

import inspect
import logging
import struct
from typing import Any

import trio
from libp2p.stream_muxer.yamux import yamux

__all__ = ["yamux_close", "swarm_conn_cleanup", "close_swarm_conn", "POLITE_CLOSE_S", "tcp_socket_stream"]

logger = logging.getLogger(__name__)


async def yamux_close(self: Any, error_code: int = yamux.GO_AWAY_NORMAL) -> None:
    """``Yamux.close``: GO_AWAY, mark every stream closed and wake its
    reader, close the session, call ``on_close`` -- then one checkpoint."""
    async with self.streams_lock:
        if not self.event_shutting_down.is_set():
            try:
                header = struct.pack(yamux.YAMUX_HEADER_FORMAT, 0, yamux.TYPE_GO_AWAY, 0, 0, error_code)
                await self._write_frame(header)
            except Exception as e:
                logger.debug("failed to send GO_AWAY: %s", e)
            self.event_shutting_down.set()
            self.new_stream_send_channel.close()  # unblocks accept_stream
            for stream in self.streams.values():
                stream.closed = stream.send_closed = stream.recv_closed = True
                event = self.stream_events.get(stream.stream_id)
                if event is not None:
                    event.set()
            self.streams.clear()
            self.stream_buffers.clear()
            self.stream_events.clear()
    try:
        await self.secured_conn.close()
    except Exception as e:
        logger.debug("error closing the secured connection to %s: %s", self.peer_id, e)
    self.event_closed.set()
    on_close = self.on_close
    if on_close is not None:
        result = on_close()
        if inspect.isawaitable(result):
            await result
    await trio.sleep(0)


async def swarm_conn_cleanup(self: Any) -> None:
    """``SwarmConn._cleanup``: leave the swarm, close the muxer (unless it is
    shared with another wrapper), reset the streams, one checkpoint for
    their handlers, then announce the disconnect."""
    self.swarm.remove_conn(self)
    if not getattr(self, "_shared_muxed_conn", False):
        try:
            if not self.muxed_conn.is_closed:
                await self.muxed_conn.close()
        except Exception as e:
            logger.warning("error closing muxed connection: %s", e)
    for stream in self.streams.copy():
        try:
            await stream.reset()
        except Exception as e:
            logger.warning("error resetting stream: %s", e)
    await trio.sleep(0)
    await self._notify_disconnected()


#: How long the close of one connection (yamux GO_AWAY, stream resets, the
#: socket) may take at the host's close before its TCP socket is closed
#: under it. GO_AWAY is a local write, done at once unless the socket's
#: send buffer is full: a peer that stopped reading (a frozen or overloaded
#: process, data queued for it) held every close for the host's whole 5 s
#: bound (measured: a ``share`` stopped while a frozen ``get`` received exited
#: 5.0 s after the person's second Ctrl-C).
POLITE_CLOSE_S = 0.5


def tcp_socket_stream(conn: Any) -> trio.SocketStream | None:
    """The TCP socket under a swarm connection (SwarmConn -> Yamux ->
    SecureSession -> NoiseTransportReadWriter -> RawConnection ->
    TrioTCPStream -> trio.SocketStream), or None: a relayed connection (a
    stream of another connection) or a layering this code does not know."""
    layer = conn
    for attr in ("muxed_conn", "secured_conn", "conn", "conn", "stream", "stream"):
        layer = getattr(layer, attr, None)
        if layer is None:
            return None
    return layer if isinstance(layer, trio.SocketStream) else None


async def close_swarm_conn(conn: Any) -> None:
    """Close a swarm connection; if it is still closing after
    ``POLITE_CLOSE_S``, close its TCP socket under it. The writer blocked on
    that socket then fails at once (``TrioTCPStream.write`` takes a closed
    socket for a finished write), so the same close goes on through every
    layer: swarm, streams, the disconnect notice. Cancelling it instead would
    leave it half done, and ``SwarmConn.close`` runs once only. A relayed
    connection has no socket of its own: it closes under the caller's bound
    (the host's 5 s), as before. Never raises: the connection may be broken
    already."""
    async with trio.open_nursery() as nursery:

        async def cut_when_stuck() -> None:
            await trio.sleep(POLITE_CLOSE_S)
            sock = tcp_socket_stream(conn)
            if sock is not None:
                logger.debug("closing the socket under a connection still closing after %.1f s", POLITE_CLOSE_S)
                await sock.aclose()

        nursery.start_soon(cut_when_stuck)
        try:
            await conn.close()
        except Exception:  # already broken: nothing left to close
            pass
        nursery.cancel_scope.cancel()
