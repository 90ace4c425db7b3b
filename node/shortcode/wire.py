"""The short-code protocol's messages, pure.

One protobuf-style message per frame (``node/pbwire``: unsigned-varint length
prefix), every field bounded before it costs memory::

    ShortCodeMsg {
      1: type   varint   HELLO=1 | REPLY=2 | REFUSED=3 | CONFIRM=4
      2: pake   bytes    SPAKE2 message (HELLO, REPLY), 33 bytes
      3: box    bytes    the sealed full code (REPLY), <= MAX_BOX
      4: mac    bytes    key confirmation (CONFIRM), 32 bytes
      5: reason varint   why a code is refused (REFUSED)
    }

The exchange is receiver HELLO -> sharer REPLY or REFUSED -> receiver
CONFIRM; :mod:`.core` decides what each side sends.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from p2pshare.errors import ProtocolViolation
from p2pshare.node.pbwire import LEN, VARINT, PbError, field_bytes, field_varint, frame, iter_fields, read_frame

__all__ = [
    "MAX_BOX",
    "MAX_MESSAGE_SIZE",
    "PAKE_BYTES",
    "PROTOCOL_ID",
    "MsgType",
    "Refusal",
    "ShortCodeMsg",
    "WireError",
    "decode",
    "encode",
    "read_message",
]

PROTOCOL_ID = "/p2pshare/shortcode/1.0.0"
PAKE_BYTES = 33  # SPAKE2 on Ed25519: a side byte and a 32-byte point
MAC_BYTES = 32
MAX_BOX = 16 * 1024 + 16  # the longest v1 code (sharecode.MAX_CODE_CHARS) and the AEAD tag
MAX_MESSAGE_SIZE = MAX_BOX + 64


class MsgType(enum.IntEnum):
    HELLO = 1
    REPLY = 2
    REFUSED = 3
    CONFIRM = 4


class Refusal(enum.IntEnum):
    """Why a sharer refuses a short code before any PAKE runs."""

    EXPIRED = 1
    TOO_MANY_FAILURES = 2

    @property
    def text(self) -> str:
        return "has expired" if self is Refusal.EXPIRED else "was refused after too many wrong tries"


class WireError(ProtocolViolation, ValueError):
    """A malformed, oversized or unexpected short-code message."""


@dataclass(frozen=True)
class ShortCodeMsg:
    type: MsgType
    pake: bytes = b""
    box: bytes = b""
    mac: bytes = b""
    reason: Refusal | None = None


def encode(msg: ShortCodeMsg) -> bytes:
    body = field_varint(1, int(msg.type))
    if msg.pake:
        body += field_bytes(2, msg.pake)
    if msg.box:
        body += field_bytes(3, msg.box)
    if msg.mac:
        body += field_bytes(4, msg.mac)
    if msg.reason is not None:
        body += field_varint(5, int(msg.reason))
    if len(body) > MAX_MESSAGE_SIZE:
        raise ValueError("short-code message over the size limit")
    return frame(body)


def decode(body: bytes) -> ShortCodeMsg:
    """Parse one message body and check the fields its type needs."""
    if len(body) > MAX_MESSAGE_SIZE:
        raise WireError("short-code message too large")
    fields: dict[int, int | bytes] = {}
    try:
        for num, wire, val in iter_fields(body):
            want = VARINT if num in (1, 5) else LEN
            if num in (1, 2, 3, 4, 5) and wire == want:
                fields[num] = val
    except PbError as e:
        raise WireError(f"malformed short-code message: {e}") from None
    try:
        mtype = MsgType(_int(fields, 1))
    except ValueError:
        raise WireError("short-code message of unknown type") from None
    pake, box, mac = (_bytes(fields, n) for n in (2, 3, 4))
    reason: Refusal | None = None
    if mtype in (MsgType.HELLO, MsgType.REPLY) and len(pake) != PAKE_BYTES:
        raise WireError(f"PAKE message of {len(pake)} bytes, expected {PAKE_BYTES}")
    if mtype is MsgType.REPLY and not 16 < len(box) <= MAX_BOX:
        raise WireError(f"sealed code of {len(box)} bytes")
    if mtype is MsgType.CONFIRM and len(mac) != MAC_BYTES:
        raise WireError(f"confirmation of {len(mac)} bytes, expected {MAC_BYTES}")
    if mtype is MsgType.REFUSED:
        try:
            reason = Refusal(_int(fields, 5))
        except ValueError:
            raise WireError("refusal with an unknown reason") from None
    return ShortCodeMsg(mtype, pake, box, mac, reason)


def _int(fields: dict[int, int | bytes], num: int) -> int:
    val = fields.get(num, 0)
    return val if isinstance(val, int) else 0


def _bytes(fields: dict[int, int | bytes], num: int) -> bytes:
    val = fields.get(num, b"")
    return val if isinstance(val, bytes) else b""


async def read_message(read: Callable[[int], Awaitable[bytes]]) -> ShortCodeMsg:
    """Read exactly one message (``EOFError`` if the stream ends first)."""
    try:
        body = await read_frame(read, MAX_MESSAGE_SIZE)
    except PbError as e:
        raise WireError(str(e)) from None
    return decode(body)
