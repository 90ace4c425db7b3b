"""STUN Binding over TCP (RFC 5389 §7.2.2), pure, using aioice's message codec.

A TCP STUN message is self-delimiting: a 20-byte header whose bytes 2-3 give
the body length. Bodies are bounded by :data:`MAX_BODY`; only Binding
requests and success responses are handled, with XOR-MAPPED-ADDRESS
(falling back to MAPPED-ADDRESS from old servers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from p2pshare.errors import ProtocolViolation

if TYPE_CHECKING:
    from aioice import stun as _stun_types

__all__ = [
    "HEADER_LENGTH",
    "MAX_BODY",
    "StunError",
    "body_length",
    "binding_request",
    "binding_response",
    "parse_binding_response",
    "Observation",
]

HEADER_LENGTH = 20  # RFC 5389 §6 (aioice's, checked in tests/natinfo)
MAX_BODY = 512
_MAGIC = (0x2112A442).to_bytes(4, "big")  # the magic cookie


def _codec() -> Any:
    """aioice's STUN codec, imported on first use: importing aioice pulls in
    its ICE agent, mDNS and dnspython (~70 ms), which every ``share`` and
    ``get`` paid at start-up though most never send a STUN message."""
    from aioice import stun

    return stun


class StunError(ProtocolViolation, ValueError):
    """A malformed, oversized or unrelated STUN message."""


@dataclass(frozen=True)
class Observation:
    """What one STUN server saw of our connection from ``local``."""

    local: tuple[str, int]
    server: tuple[str, int]
    mapped: tuple[str, int]


def body_length(header: bytes) -> int:
    """The body length announced by a 20-byte STUN header."""
    if len(header) != HEADER_LENGTH:
        raise StunError("short STUN header")
    if header[0] & 0xC0 or header[4:8] != _MAGIC:
        raise StunError("not a STUN message")
    size = int.from_bytes(header[2:4], "big")
    if size > MAX_BODY or size % 4:
        raise StunError(f"bad STUN body length {size}")
    return size


def binding_request() -> tuple[bytes, bytes]:
    """``(transaction ID, request bytes)``."""
    txid = os.urandom(12)
    stun = _codec()
    msg = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, transaction_id=txid)
    return txid, bytes(msg)


def _parse(data: bytes) -> _stun_types.Message:
    body_length(data[:HEADER_LENGTH])
    try:
        msg: _stun_types.Message = _codec().parse_message(data)
        return msg
    except Exception as e:
        raise StunError(f"malformed STUN message: {e}") from None


def binding_response(request: bytes, observed: tuple[str, int]) -> bytes:
    """The success response to a Binding request from ``observed``."""
    msg = _parse(request)
    stun = _codec()
    if msg.message_method != stun.Method.BINDING or msg.message_class != stun.Class.REQUEST:
        raise StunError("not a Binding request")
    resp = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, transaction_id=msg.transaction_id)
    resp.attributes["XOR-MAPPED-ADDRESS"] = (observed[0], observed[1])
    return bytes(resp)


def parse_binding_response(data: bytes, txid: bytes) -> tuple[str, int]:
    msg = _parse(data)
    if msg.transaction_id != txid:
        raise StunError("STUN answer for another transaction")
    stun = _codec()
    if msg.message_method != stun.Method.BINDING or msg.message_class != stun.Class.RESPONSE:
        raise StunError("not a Binding success response")
    addr = msg.attributes.get("XOR-MAPPED-ADDRESS") or msg.attributes.get("MAPPED-ADDRESS")
    if not (isinstance(addr, tuple) and len(addr) == 2):
        raise StunError("Binding response without a mapped address")
    ip, port = addr
    if not isinstance(ip, str) or not isinstance(port, int) or not 0 < port < 65536:
        raise StunError("bad mapped address")
    return ip, port
