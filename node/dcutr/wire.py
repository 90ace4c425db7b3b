"""DCUtR wire format (libp2p/specs relay/DCUtR.md), pure.

``HolePunch{type: CONNECT=100 | SYNC=300, repeated bytes ObsAddrs}``, proto2,
each message prefixed by its unsigned-varint length and refused above 4 KiB
(the spec's SHOULD). At most :data:`MAX_ADDRS` addresses are kept; each is
kept as bytes here and parsed (and filtered) by the policy.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from p2pshare.errors import ProtocolViolation
from p2pshare.node.pbwire import LEN, VARINT, PbError, field_bytes, field_varint, frame, iter_fields, read_frame

__all__ = [
    "PROTOCOL_ID",
    "MAX_MESSAGE_SIZE",
    "MAX_ADDRS",
    "MsgType",
    "HolePunch",
    "WireError",
    "encode",
    "decode",
    "read_message",
]

PROTOCOL_ID = "/libp2p/dcutr"
MAX_MESSAGE_SIZE = 4096
MAX_ADDRS = 16
_MAX_ADDR = 512


class MsgType(enum.IntEnum):
    CONNECT = 100
    SYNC = 300


class WireError(ProtocolViolation, ValueError):
    """A malformed, oversized or unexpected DCUtR message."""


@dataclass(frozen=True)
class HolePunch:
    type: MsgType
    obs_addrs: tuple[bytes, ...] = ()


def encode(msg: HolePunch) -> bytes:
    body = field_varint(1, int(msg.type))
    for a in msg.obs_addrs[:MAX_ADDRS]:
        body += field_bytes(2, a)
    if len(body) > MAX_MESSAGE_SIZE:
        raise ValueError("HolePunch message over 4 KiB")
    return frame(body)


def decode(body: bytes) -> HolePunch:
    if len(body) > MAX_MESSAGE_SIZE:
        raise WireError("message too large")
    mtype: int | None = None
    addrs: list[bytes] = []
    try:
        for num, wire, val in iter_fields(body):
            if num == 1 and wire == VARINT:
                assert isinstance(val, int)
                mtype = val
            elif num == 2 and wire == LEN:
                assert isinstance(val, bytes)
                if len(val) <= _MAX_ADDR and len(addrs) < MAX_ADDRS:
                    addrs.append(val)
    except PbError as e:
        raise WireError(f"malformed HolePunch: {e}") from None
    if mtype is None:
        raise WireError("HolePunch without type")
    try:
        t = MsgType(mtype)
    except ValueError:
        raise WireError(f"unknown HolePunch type {mtype}") from None
    return HolePunch(t, tuple(addrs))


async def read_message(read: Callable[[int], Awaitable[bytes]]) -> HolePunch:
    try:
        body = await read_frame(read, MAX_MESSAGE_SIZE)
    except PbError as e:
        raise WireError(str(e)) from None
    return decode(body)
