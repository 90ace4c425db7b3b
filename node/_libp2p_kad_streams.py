"""Inbound Kademlia streams as a DHT server serves them (a patch of py-libp2p's
``KadDHT``; ``_libp2p_fixes``'s docstring says what upstream does and why).

``kad_handle_stream`` replaces ``KadDHT.handle_stream`` without its limiter
of 12 streams; ``kad_inbound_stream`` wraps ``KadDHT._do_handle_stream``:
admission by ``node.rcmgr.kad_streams`` (per peer, per address group, in
all; a full table ends a waiting stream for a newcomer), an idle deadline,
requests bounded at their length prefix, no answer to ADD_PROVIDER.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable
from typing import Any

import trio
from libp2p.io.exceptions import MessageTooLarge

from ._libp2p_originals import ORIGINALS as _ORIGINALS
from ._libp2p_rcmgr import remote_ip
from .rcmgr.manager import is_loopback_ip, source_of

__all__ = ["KAD_REQUEST_BYTES", "KAD_SOURCE", "KAD_STREAM_IDLE", "kad_handle_stream", "kad_inbound_stream"]

logger = logging.getLogger(__name__)

#: Largest request a KAD stream may carry (go and py-libp2p allow 4 MiB; ours are a few KiB, PUT_VALUE is refused).
KAD_REQUEST_BYTES = 64 << 10
#: Seconds a KAD stream may wait for its next whole request (go: 1 min).
KAD_STREAM_IDLE = 10.0
_KAD_ADD_PROVIDER = 2  # Message.MessageType.ADD_PROVIDER
#: The source (address group) of the KAD stream whose request is being
#: handled, for the provider store (``bounded_add_provider``): None on
#: loopback or outside a request; :data:`RELAYED_SOURCE` over a relay.
KAD_SOURCE: contextvars.ContextVar[str | None] = contextvars.ContextVar("p2ps_kad_source", default=None)


def _is_lone_varint(data: bytes | bytearray | memoryview) -> bool:
    """A complete unsigned varint and nothing else (how the handler writes a length prefix)."""
    raw = bytes(data)
    return 0 < len(raw) <= 10 and all(b & 0x80 for b in raw[:-1]) and not raw[-1] & 0x80


def _is_add_provider(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` is a Kademlia message of type ADD_PROVIDER (field 1, varint)."""
    raw = bytes(data)
    if len(raw) < 2 or raw[0] != 0x08:  # field 1, wire type 0 comes first in protobuf's canonical order
        return False
    return raw[1] == _KAD_ADD_PROVIDER


class _GuardedKadStream:
    """The KAD stream as py-libp2p's handler sees it: bounded requests, no ADD_PROVIDER answers.

    Reads: the varint length of every request is checked as it arrives; one
    over ``KAD_REQUEST_BYTES`` raises ``MessageTooLarge`` before its body is
    read (the handler then resets the stream, as for its own 4 MiB limit).
    Writes: the handler writes each answer as a varint length, then the
    message; the length is held until the message shows what it is: an
    ADD_PROVIDER answer is dropped with its length, anything else goes out as
    written. ``request`` is called when a whole request has arrived,
    ``waiting`` when the handler reads again after one (it answered, dropped
    or ignored it: py-libp2p sends nothing for a message type it does not
    know, and such a request must not keep the stream "at work"), and
    ``answered`` after each answer (sent or dropped).
    """

    def __init__(
        self,
        stream: Any,
        answered: Callable[[], None],
        request: Callable[[], None] = lambda: None,
        waiting: Callable[[], None] = lambda: None,
    ) -> None:
        self._stream = stream
        self._answered = answered
        self._request_cb = request
        self._waiting = waiting
        self._in_request = False  # a whole request arrived and the handler has not read since
        self._held: bytes | None = None
        self._prefix = bytearray()  # the request length read so far
        self._body_left = 0  # bytes of the current request still to come

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _request(self) -> None:
        self._in_request = True
        self._request_cb()

    async def read(self, n: int | None = None) -> bytes:
        if self._in_request and not self._body_left and not self._prefix:
            self._in_request = False
            self._waiting()
        data: bytes = await self._stream.read(n)
        self._check(data)
        return data

    def _check(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            if self._body_left:
                step = min(self._body_left, len(data) - pos)
                self._body_left -= step
                pos += step
                if not self._body_left:
                    self._request()
                continue
            byte = data[pos]
            pos += 1
            self._prefix.append(byte)
            if byte & 0x80 and len(self._prefix) < 10:
                continue
            length = sum((b & 0x7F) << (7 * i) for i, b in enumerate(self._prefix))
            self._prefix.clear()
            if length > KAD_REQUEST_BYTES:
                raise MessageTooLarge(f"request of {length} bytes (at most {KAD_REQUEST_BYTES})")
            self._body_left = length
            if not length:
                self._request()

    async def write(self, data: bytes) -> None:
        held, self._held = self._held, None
        if held is None:
            if _is_lone_varint(data):
                self._held = bytes(data)
                return
            await self._stream.write(data)
        elif not _is_add_provider(data):
            await self._stream.write(held + bytes(data))
        self._answered()


async def _reset_quietly(stream: Any) -> None:
    with contextlib.suppress(Exception), trio.move_on_after(1.0):
        await stream.reset()


async def kad_handle_stream(self: Any, stream: Any) -> None:
    """``KadDHT.handle_stream`` without its limiter of 12 streams, which 12
    idle streams from 3 identities held for as long as they liked: which
    streams are served is :func:`kad_inbound_stream`'s to decide."""
    from libp2p.kad_dht.kad_dht import DHTMode

    if self.mode == DHTMode.CLIENT:
        await stream.close()
        return
    await self._do_handle_stream(stream)


#: The one source all KAD streams over relayed connections count in: such a
#: connection has no address of its own, and identities that reach a DHT
#: server through relays would otherwise escape every per-source bound.
#: DHT servers are reachable directly, so honest peers rarely come this way.
RELAYED_SOURCE = "relayed"


def _kad_group(stream: Any) -> str | None:
    """The address group a KAD stream counts in: :data:`RELAYED_SOURCE` for
    a relayed connection (or one whose address is gone); None on loopback
    (a test's peers, or a user's own processes)."""
    ip = remote_ip(stream)
    if ip is None:
        return RELAYED_SOURCE
    return None if is_loopback_ip(ip) else source_of(ip)  # the resource manager's rule


async def kad_inbound_stream(self: Any, stream: Any) -> None:
    """``KadDHT._do_handle_stream`` with admission, an idle deadline and bounded requests.

    Which streams are served is :class:`~p2pshare.node.rcmgr.kad_streams.KadInbound`'s
    decision (per peer, per address group, in all; a full table ends a
    waiting stream of the source holding the most for a newcomer), each with
    a receive window of yamux's initial 256 KiB (``_libp2p_speed`` P7); a
    stream is reset when no whole request arrives within ``KAD_STREAM_IDLE``
    s of its opening or of our previous answer, or when a request is over
    ``KAD_REQUEST_BYTES``; ADD_PROVIDER gets no answer (:class:`_GuardedKadStream`).
    """
    from p2pshare.node.rcmgr.kad_streams import KadInbound

    peer = str(stream.muxed_conn.peer_id)
    table: KadInbound = self.__dict__.setdefault("_p2ps_kad_inbound", KadInbound())
    scopes: dict[object, trio.CancelScope] = self.__dict__.setdefault("_p2ps_kad_scopes", {})
    key = object()
    group = _kad_group(stream)
    KAD_SOURCE.set(group)  # this task serves this stream only
    admission = table.admit(key, peer, group, trio.current_time())
    if not admission.admitted:
        logger.debug("kad: no room for a stream from %s (%d served): reset", peer, len(table))
        await _reset_quietly(stream)
        return
    if admission.evict is not None:
        scopes[admission.evict].cancel()  # its handler resets it and leaves
    try:
        with trio.CancelScope(deadline=trio.current_time() + KAD_STREAM_IDLE) as scope:
            scopes[key] = scope

            def answered() -> None:
                now = trio.current_time()
                table.answered(key, now)
                scope.deadline = now + KAD_STREAM_IDLE

            guarded = _GuardedKadStream(stream, answered, lambda: table.request(key), lambda: table.waiting(key))
            await _ORIGINALS["kad_inbound_stream"](self, guarded)
        if scope.cancelled_caught:
            why = "ended for a newcomer" if key not in table else f"no request within {KAD_STREAM_IDLE:g} s"
            logger.debug("kad: stream from %s %s: reset", peer, why)
            await _reset_quietly(stream)
    finally:
        table.remove(key)
        scopes.pop(key, None)
