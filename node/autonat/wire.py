"""AutoNAT v1 wire format (libp2p/specs autonat/autonat-v1.md), pure.

``Message{type, dial{peer{id, addrs}}, dialResponse{status, statusText,
addr}}``, each prefixed by its unsigned-varint length. Decoding validates
into frozen dataclasses and bounds everything: 4 KiB per message (as
go-libp2p), at most :data:`MAX_ADDRS` addresses, peer IDs of at most 128
bytes, status text cut to 256 characters.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from p2pshare.errors import ProtocolViolation
from p2pshare.node.pbwire import (
    LEN,
    VARINT,
    PbError,
    field_bytes,
    field_varint,
    frame,
    iter_fields,
    read_frame,
)

__all__ = [
    "PROTOCOL_ID",
    "MAX_MESSAGE_SIZE",
    "MAX_ADDRS",
    "ResponseStatus",
    "Dial",
    "DialResponse",
    "WireError",
    "encode_dial",
    "encode_response",
    "decode_message",
    "read_message",
]

PROTOCOL_ID = "/libp2p/autonat/1.0.0"
MAX_MESSAGE_SIZE = 4096
MAX_ADDRS = 16  # go-libp2p's maxPeerAddresses
MAX_PEER_ID = 128
MAX_TEXT = 256
_MAX_ADDR = 512

_TYPE_DIAL = 0
_TYPE_DIAL_RESPONSE = 1


class ResponseStatus(enum.IntEnum):
    OK = 0
    E_DIAL_ERROR = 100
    E_DIAL_REFUSED = 101
    E_BAD_REQUEST = 200
    E_INTERNAL_ERROR = 300


class WireError(ProtocolViolation, ValueError):
    """A malformed, oversized or out-of-place AutoNAT message."""


@dataclass(frozen=True)
class Dial:
    """A dial-back request: ``peer_id`` (may be empty: optional) and its addrs."""

    peer_id: bytes
    addrs: tuple[bytes, ...]


@dataclass(frozen=True)
class DialResponse:
    status: ResponseStatus
    text: str = ""
    addr: bytes | None = None


def encode_dial(msg: Dial) -> bytes:
    peer = b""
    if msg.peer_id:
        peer += field_bytes(1, msg.peer_id)
    for a in msg.addrs[:MAX_ADDRS]:
        peer += field_bytes(2, a)
    body = field_varint(1, _TYPE_DIAL) + field_bytes(2, field_bytes(1, peer))
    return frame(body)


def encode_response(msg: DialResponse) -> bytes:
    inner = field_varint(1, int(msg.status))
    if msg.text:
        inner += field_bytes(2, msg.text[:MAX_TEXT].encode())
    if msg.addr is not None:
        inner += field_bytes(3, msg.addr)
    body = field_varint(1, _TYPE_DIAL_RESPONSE) + field_bytes(3, inner)
    return frame(body)


def _decode_peer(buf: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    pid = b""
    addrs: list[bytes] = []
    for num, wire, val in iter_fields(buf):
        if num == 1 and wire == LEN:
            assert isinstance(val, bytes)
            if len(val) > MAX_PEER_ID:
                raise WireError("peer ID too long")
            pid = val
        elif num == 2 and wire == LEN:
            assert isinstance(val, bytes)
            if len(addrs) >= MAX_ADDRS:
                continue  # bounded: extra addresses are ignored
            if len(val) > _MAX_ADDR:
                raise WireError("address too long")
            addrs.append(val)
    return pid, tuple(addrs)


def _decode_dial(buf: bytes) -> Dial:
    peer: tuple[bytes, tuple[bytes, ...]] | None = None
    for num, wire, val in iter_fields(buf):
        if num == 1 and wire == LEN:
            assert isinstance(val, bytes)
            peer = _decode_peer(val)
    if peer is None:
        raise WireError("DIAL without peer info")
    return Dial(peer[0], peer[1])


def _decode_response(buf: bytes) -> DialResponse:
    status: int | None = None
    text = ""
    addr: bytes | None = None
    for num, wire, val in iter_fields(buf):
        if num == 1 and wire == VARINT:
            assert isinstance(val, int)
            status = val
        elif num == 2 and wire == LEN:
            assert isinstance(val, bytes)
            text = val[: MAX_TEXT * 4].decode("utf-8", "replace")[:MAX_TEXT]
        elif num == 3 and wire == LEN:
            assert isinstance(val, bytes)
            if len(val) > _MAX_ADDR:
                raise WireError("address too long")
            addr = val
    if status is None:
        raise WireError("DIAL_RESPONSE without status")
    try:
        st = ResponseStatus(status)
    except ValueError:
        raise WireError(f"unknown response status {status}") from None
    return DialResponse(st, text, addr)


def decode_message(body: bytes) -> Dial | DialResponse:
    """Decode one message body (without its length prefix)."""
    if len(body) > MAX_MESSAGE_SIZE:
        raise WireError("message too large")
    mtype: int | None = None
    dial: bytes | None = None
    resp: bytes | None = None
    try:
        for num, wire, val in iter_fields(body):
            if num == 1 and wire == VARINT:
                assert isinstance(val, int)
                mtype = val
            elif num == 2 and wire == LEN:
                assert isinstance(val, bytes)
                dial = val
            elif num == 3 and wire == LEN:
                assert isinstance(val, bytes)
                resp = val
        if mtype == _TYPE_DIAL:
            if dial is None:
                raise WireError("DIAL message without dial field")
            return _decode_dial(dial)
        if mtype == _TYPE_DIAL_RESPONSE:
            if resp is None:
                raise WireError("DIAL_RESPONSE message without dialResponse field")
            return _decode_response(resp)
    except PbError as e:
        raise WireError(f"malformed AutoNAT message: {e}") from None
    raise WireError(f"unknown AutoNAT message type {mtype}")


async def read_message(read: Callable[[int], Awaitable[bytes]]) -> Dial | DialResponse:
    try:
        body = await read_frame(read, MAX_MESSAGE_SIZE)
    except PbError as e:
        raise WireError(str(e)) from None
    return decode_message(body)
