"""Bounds on what a peer's identify message can make us keep.

Why: py-libp2p 0.8.1 reads an identify answer or an identify/push of up to
1 MiB and stores every protocol name in it, and up to 1,000 listen
addresses and a signed peer record of any size, in the peerstore, which
keeps 1,000 peers. Peer IDs cost nothing, so one host can fill that with
fresh identities. Measured on a real ``p2pshare relay``: 20 fresh
identities, each pushing one 1 MB message of 77,000 protocol names, grew
it by 109 MB, and 160 of them by 850 MB (5.3 MB kept per identity: ~5 GB
at the peerstore's 1,000 peers, more than a small community relay has).
go-libp2p refuses an identify message over 8 KiB and rust-libp2p over
4 KiB, so no real peer sends one anywhere near our bounds.

The bounds (:func:`bounded`, pure, on the parsed message): a message over
:data:`MAX_MESSAGE_BYTES` is ignored whole; otherwise at most
:data:`MAX_PROTOCOLS` protocol names of at most :data:`MAX_NAME_BYTES`
bytes, at most :data:`MAX_ADDRS` listen addresses of at most
:data:`MAX_ADDR_BYTES` bytes, and a signed peer record only of at most
:data:`MAX_RECORD_BYTES` and :data:`MAX_ADDRS` addresses (else the record
is dropped and the listen addresses stand). A peer then costs the
peerstore a few tens of kilobytes at most, whatever it sends. Kubo
announces ~25 protocols and ~10-20 addresses; js and go peers fewer.

Both callers of upstream's ``update_peerstore_from_identify`` (the
identify answer in ``BasicHost._identify_peer`` and the identify/push
handler) look it up by name in their modules: ``_libp2p_patches`` replaces
it in both with :func:`make_bounded_update`, which also tells the
listeners added with :func:`add_stored_listener` once a message was stored
(``Host.identify_events``: a wait for a peer's addresses is woken, not polled).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .pbwire import LEN, PbError, iter_fields

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_PROTOCOLS",
    "MAX_NAME_BYTES",
    "MAX_ADDRS",
    "MAX_ADDR_BYTES",
    "MAX_RECORD_BYTES",
    "bounded",
    "record_addrs",
    "make_bounded_update",
    "add_stored_listener",
    "remove_stored_listener",
]

logger = logging.getLogger(__name__)

#: Largest identify message we read anything from (go-libp2p: 8 KiB).
MAX_MESSAGE_BYTES = 64 * 1024
#: Protocol names kept per peer, and the longest name kept.
MAX_PROTOCOLS = 64
MAX_NAME_BYTES = 256
#: Listen addresses kept per peer (also the most a signed record may hold), and the longest kept.
MAX_ADDRS = 32
MAX_ADDR_BYTES = 256
#: Largest signed peer record (envelope) kept.
MAX_RECORD_BYTES = 8 * 1024


def record_addrs(envelope: bytes) -> int | None:
    """Addresses in a signed peer record envelope; None when it cannot be read (upstream refuses it)."""
    try:
        payload = next((v for n, w, v in iter_fields(envelope) if n == 3 and w == LEN), None)
        if not isinstance(payload, bytes):
            return None
        return sum(1 for n, w, _ in iter_fields(payload) if n == 3 and w == LEN)
    except PbError:
        return None


def bounded(msg: Any) -> Any | None:
    """``msg`` (a parsed ``Identify``) trimmed to the bounds, in place; None
    when it is too large to read anything from."""
    if msg.ByteSize() > MAX_MESSAGE_BYTES:
        return None
    names = [p for p in msg.protocols if len(p.encode("utf-8", "replace")) <= MAX_NAME_BYTES]
    if len(names) != len(msg.protocols) or len(names) > MAX_PROTOCOLS:
        del msg.protocols[:]
        msg.protocols.extend(names[:MAX_PROTOCOLS])
    addrs = [a for a in msg.listen_addrs if len(a) <= MAX_ADDR_BYTES]
    if len(addrs) != len(msg.listen_addrs) or len(addrs) > MAX_ADDRS:
        del msg.listen_addrs[:]
        msg.listen_addrs.extend(addrs[:MAX_ADDRS])
    if msg.HasField("signedPeerRecord"):
        raw = bytes(msg.signedPeerRecord)
        count = record_addrs(raw)
        if len(raw) > MAX_RECORD_BYTES or (count is not None and count > MAX_ADDRS):
            msg.ClearField("signedPeerRecord")
    return msg


Update = Callable[[Any, Any, Any], Awaitable[None]]
Stored = Callable[[Any, Any], None]

#: Called with (peerstore, peer ID) after an identify answer or push was stored.
_stored_listeners: set[Stored] = set()


def add_stored_listener(listener: Stored) -> None:
    """Call ``listener(peerstore, peer_id)`` after each identify message stored
    (in any host of this process); it must return at once."""
    _stored_listeners.add(listener)


def remove_stored_listener(listener: Stored) -> None:
    _stored_listeners.discard(listener)


def _tell_stored(peerstore: Any, peer_id: Any) -> None:
    for listener in list(_stored_listeners):
        try:
            listener(peerstore, peer_id)
        except Exception:  # a listener must never break identify
            logger.exception("identify listener failed")


def make_bounded_update(original: Callable[[], Update]) -> Update:
    """A stand-in for upstream's ``update_peerstore_from_identify`` that
    stores only what :func:`bounded` keeps (``original()`` returns the
    upstream function, looked up when called)."""

    async def update_peerstore_from_identify(peerstore: Any, peer_id: Any, identify_msg: Any) -> None:
        kept = bounded(identify_msg)
        if kept is None:
            logger.debug("identify from %s: %d bytes, ignored", peer_id, identify_msg.ByteSize())
            return
        await original()(peerstore, peer_id, kept)
        _tell_stored(peerstore, peer_id)

    return update_peerstore_from_identify
