"""Feeds the resource manager (``node/rcmgr``) from py-libp2p 0.8.1's internals.

Three hooks, each registered and fingerprinted in ``_libp2p_patches``:

* **Inbound streams** (``BasicHost._swarm_stream_handler``): a stream is
  counted in the system, peer, source (its connection's address) and
  transient scopes before multistream negotiation starts, and in its
  protocol's scopes once agreed; over a limit
  it is reset at once, before it costs more than yamux's bookkeeping.
* **Stream memory** (the yamux window patch in ``_libp2p_speed`` asks
  :func:`window_target`): an inbound stream is granted a window beyond the
  spec's 256 KiB only when its scopes can reserve the extra memory, as
  go-yamux asks go-libp2p's resource manager.
* **Lingering streams**: when an inbound stream's handler returns and the
  peer has not ended its side, the stream keeps its scopes while it waits
  up to :data:`LINGER_SECONDS` for the peer's end (what it still sends is
  read and dropped, at most :data:`LINGER_BYTES`), then it is reset.
  Without this a peer could leave stream after stream half-open (its
  request answered, our side closed, its side never) with up to a window
  of unread data each, outside every stream limit: 200 HOP streams held
  52 MB in a relay whose resource manager counted none of them.
* **Flow control** (``Yamux.__init__``): upstream only *warns* when a peer
  sends more than the window it was granted, and keeps buffering, so a
  hostile peer could fill memory through a stream nobody reads. Here each
  stream's buffer refuses data beyond the granted window (plus one frame of
  slack) and the connection is closed, as go-yamux does.

Inbound connections are counted in ``_libp2p_fixes.inbound_until_closed``
(the swarm's inbound handler, which already holds each connection until it
closes) through :func:`open_connection_scope` and the manager attached to the
swarm by :func:`attach`.
"""

from __future__ import annotations

import logging
from typing import Any

import trio
from libp2p.protocol_muxer.exceptions import MultiselectError
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator

from ._libp2p_originals import ORIGINALS as _ORIGINALS
from ._libp2p_streambuf import StreamBuffer
from ._libp2p_yamux_rx import link_session
from .rcmgr import ResourceLimitExceeded, ResourceManager
from .rcmgr.limits import STREAM_BASE_MEMORY

logger = logging.getLogger(__name__)

__all__ = [
    "attach",
    "manager_of",
    "handle_inbound_stream",
    "window_target",
    "yamux_init_bounded",
]

_ATTR = "_p2ps_rcmgr"
_SCOPE = "_p2ps_scope"
_GROWN = "_p2ps_window_reserved"
#: Seconds a multistream negotiation may take on an inbound stream.
NEGOTIATE_TIMEOUT = 10.0
#: Seconds an inbound stream whose handler is done waits for the peer to end
#: its side before it is reset (go-yamux: 5 minutes, for the whole
#: connection's sake; here a stream at a time, and long enough for a
#: receiver to drain a full 16 MiB window at ~1 MB/s).
LINGER_SECONDS = 20.0
#: What a lingering stream reads and drops before it is reset at once.
LINGER_BYTES = 256 * 1024


def attach(swarm: Any, manager: ResourceManager) -> None:
    """Make ``manager`` count this swarm's inbound connections and streams."""
    setattr(swarm, _ATTR, manager)


def manager_of(swarm: Any) -> ResourceManager | None:
    found = getattr(swarm, _ATTR, None)
    return found if isinstance(found, ResourceManager) else None


async def _reset(net_stream: Any) -> None:
    with trio.CancelScope(shield=True):
        try:
            await net_stream.reset()
        except Exception:
            pass


async def handle_inbound_stream(self: Any, net_stream: Any) -> None:
    """``BasicHost._swarm_stream_handler`` with the resource manager's scopes.

    Same steps as upstream for TCP + yamux (negotiate, set the protocol, run
    its handler in this task); the QUIC negotiation semaphores are not
    loaded by p2pshare.
    """
    manager = manager_of(self.get_network())
    if manager is None:
        await _ORIGINALS["host_inbound_stream_scopes"](self, net_stream)
        return
    peer = str(net_stream.muxed_conn.peer_id)
    try:
        scope = manager.open_stream(peer, remote_ip(net_stream))
    except ResourceLimitExceeded as e:
        logger.debug("refusing a stream from %s: %s", peer, e)
        await _reset(net_stream)
        return
    muxed_stream = getattr(net_stream, "muxed_stream", None)
    if muxed_stream is not None:
        setattr(muxed_stream, _SCOPE, scope)
    try:
        try:
            with trio.fail_after(NEGOTIATE_TIMEOUT):
                protocol, handler = await self.multiselect.negotiate(
                    MultiselectCommunicator(net_stream), NEGOTIATE_TIMEOUT
                )
        except (MultiselectError, trio.TooSlowError) as e:
            logger.debug("failed to accept a stream from %s: %s", peer, e)
            await _reset(net_stream)
            return
        if protocol is None or handler is None:
            await _reset(net_stream)
            return
        try:
            scope.set_protocol(str(protocol))
        except ResourceLimitExceeded as e:
            logger.debug("refusing a %s stream from %s: %s", protocol, peer, e)
            await _reset(net_stream)
            return
        net_stream.set_protocol(protocol)
        await handler(net_stream)
        await _linger(net_stream)
    finally:
        scope.close()


async def _linger(net_stream: Any) -> None:
    """After its handler: wait for the peer to end the stream (dropping
    what it still sends), then reset it if it has not. The caller's scopes
    stay open meanwhile, so lingering streams count against the limits."""
    muxed = getattr(net_stream, "muxed_stream", None)
    if muxed is None or getattr(muxed, "recv_closed", True) or getattr(muxed, "reset_received", True):
        return  # the peer has ended its side, or reset it: nothing is held
    dropped = 0
    with trio.move_on_after(LINGER_SECONDS):
        try:
            while dropped <= LINGER_BYTES:
                data = await net_stream.read(LINGER_BYTES)
                if not data:
                    return  # its end: yamux forgets the stream once both sides are closed
                dropped += len(data)
        except Exception:  # noqa: BLE001 - reset, or the connection went; the reset below is then a no-op
            pass
    await _reset(net_stream)


def remote_ip(net_stream: Any) -> str | None:
    """The IP address of the connection ``net_stream`` came over (None for
    a relayed one: its raw connection has no address of its own)."""
    try:
        address = net_stream.muxed_conn.get_remote_address()
    except Exception:  # noqa: BLE001 - a closed socket has no peer name; then it is not counted
        return None
    return str(address[0]) if address else None


def window_target(stream: Any, wanted: int) -> int:
    """The receive window ``stream`` may be granted: ``wanted``, or the spec's initial one.

    Streams we opened are not counted (our own code bounds them); an
    inbound stream keeps 256 KiB unless its scopes reserve the rest.
    """
    scope = getattr(stream, _SCOPE, None)
    if scope is None or wanted <= STREAM_BASE_MEMORY:
        return wanted
    if scope.protocol is None:  # still negotiating: no protocol may grow it yet
        return STREAM_BASE_MEMORY
    if getattr(stream, _GROWN, 0) >= wanted - STREAM_BASE_MEMORY:
        return wanted if not scope.closed else STREAM_BASE_MEMORY
    extra = wanted - STREAM_BASE_MEMORY
    if scope.reserve_memory(extra):
        setattr(stream, _GROWN, extra)
        return wanted
    return STREAM_BASE_MEMORY


class _StreamBuffers(dict[int, Any]):
    """``Yamux.stream_buffers`` whose new buffers are :class:`StreamBuffer`
    (bounded by the window; pieces joined once when read)."""

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self._conn = conn

    def __setitem__(self, sid: int, value: Any) -> None:
        if type(value) is bytearray and not value:
            value = StreamBuffer(self._conn, sid)
        super().__setitem__(sid, value)


class _StreamEvents(dict[int, Any]):
    """``Yamux.stream_events`` that holds events for live streams only.

    Upstream's readers (``Yamux.read_stream``, ``YamuxStream.read``) wait on
    a stream's event, then put a fresh one in its place unconditionally; when
    the stream ended and was forgotten during the wait, that put an entry
    back for a stream nobody will ever clean up (the stale-stream sweep walks
    ``streams`` only). The side answering requests on a long-lived
    connection kept ~410 bytes per stream it answered until the connection
    closed: 20,176 entries, +8 MB, after ~32,000 streams on one connection
    to a relay (a long-uptime review, stop 43). Upstream creates a stream's
    entry right after the stream itself, so an event for a stream not in
    ``streams`` is dropped here; the reader then finds no entry and ends the
    read as upstream does for a stream removed meanwhile."""

    def __init__(self, streams: dict[int, Any]) -> None:
        super().__init__()
        self._streams = streams

    def __setitem__(self, sid: int, event: Any) -> None:
        if sid in self._streams:
            super().__setitem__(sid, event)


def yamux_init_bounded(self: Any, *args: Any, **kwargs: Any) -> None:
    """``Yamux.__init__``, then stream buffers that enforce flow control,
    stream events for live streams only (:class:`_StreamEvents`), and the
    session linked to its muxer for the plain-DATA fast path (P10)."""
    _ORIGINALS["yamux_flow_control"](self, *args, **kwargs)
    self.stream_buffers = _StreamBuffers(self)
    self.stream_events = _StreamEvents(self.streams)
    link_session(self)
