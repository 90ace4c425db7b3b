"""A minimal, bounded proto2 wire codec for the small NAT-traversal messages.

AutoNAT v1 and DCUtR messages are a handful of varint and bytes fields. A
hand-written codec keeps these pure modules free of py-libp2p (whose import
costs ~1 s) and lets every length be checked before anything is allocated.
Unknown fields are skipped, as proto2 requires, so newer peers interoperate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

from p2pshare.errors import ProtocolViolation

__all__ = [
    "PbError",
    "encode_uvarint",
    "decode_uvarint",
    "field_varint",
    "field_bytes",
    "iter_fields",
    "frame",
    "read_frame",
    "try_unframe",
]

_MAX_VARINT_BYTES = 10
_U64 = (1 << 64) - 1

# Wire types.
VARINT = 0
I64 = 1
LEN = 2
I32 = 5


class PbError(ProtocolViolation, ValueError):
    """Malformed or oversized protobuf bytes from a peer (one-line message)."""


def encode_uvarint(value: int) -> bytes:
    if not 0 <= value <= _U64:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_uvarint(buf: bytes, pos: int = 0) -> tuple[int, int]:
    """``(value, next position)``; PbError when truncated or too long."""
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= len(buf):
            raise PbError("truncated varint")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if value > _U64:
                raise PbError("varint overflows 64 bits")
            return value, pos + i + 1
    raise PbError("varint longer than 10 bytes")


def field_varint(number: int, value: int) -> bytes:
    return encode_uvarint(number << 3 | VARINT) + encode_uvarint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    return encode_uvarint(number << 3 | LEN) + encode_uvarint(len(value)) + value


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield ``(field number, wire type, value)``; fixed-width values as ints."""
    pos = 0
    while pos < len(buf):
        key, pos = decode_uvarint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise PbError("field number 0")
        if wire == VARINT:
            value, pos = decode_uvarint(buf, pos)
            yield number, wire, value
        elif wire == LEN:
            size, pos = decode_uvarint(buf, pos)
            if size > len(buf) - pos:
                raise PbError("length-delimited field runs past the message")
            yield number, wire, bytes(buf[pos : pos + size])
            pos += size
        elif wire in (I64, I32):
            width = 8 if wire == I64 else 4
            if pos + width > len(buf):
                raise PbError("truncated fixed-width field")
            yield number, wire, int.from_bytes(buf[pos : pos + width], "little")
            pos += width
        else:
            raise PbError(f"unsupported wire type {wire}")


def frame(body: bytes) -> bytes:
    """Prefix ``body`` with its unsigned-varint length."""
    return encode_uvarint(len(body)) + body


def try_unframe(buf: bytes, max_size: int) -> tuple[bytes, int] | None:
    """``(body, bytes consumed)`` from the front of ``buf``, or None if incomplete."""
    try:
        size, pos = decode_uvarint(buf)
    except PbError as e:
        if "truncated" in str(e):
            return None
        raise
    if size > max_size:
        raise PbError(f"message of {size} bytes exceeds the {max_size}-byte limit")
    if len(buf) - pos < size:
        return None
    return bytes(buf[pos : pos + size]), pos + size


async def read_frame(read: Callable[[int], Awaitable[bytes]], max_size: int) -> bytes:
    """Read exactly one length-prefixed message, never a byte past it.

    ``read(n)`` returns up to ``n`` bytes, ``b""`` at EOF (EOFError here).
    """
    prefix = bytearray()
    while True:
        byte = await read(1)
        if not byte:
            raise EOFError("stream ended before a message")
        prefix += byte
        if not byte[0] & 0x80:
            break
        if len(prefix) >= _MAX_VARINT_BYTES:
            raise PbError("length prefix longer than 10 bytes")
    if len(prefix) > 1 and prefix[-1] == 0:
        # unsigned-varint (multiformats) length prefixes must be minimal
        raise PbError("non-minimal varint length prefix")
    size, _ = decode_uvarint(bytes(prefix))
    if size > max_size:
        raise PbError(f"message of {size} bytes exceeds the {max_size}-byte limit")
    body = bytearray()
    while len(body) < size:
        chunk = await read(size - len(body))
        if not chunk:
            raise EOFError("stream ended inside a message")
        body += chunk
    return bytes(body)
