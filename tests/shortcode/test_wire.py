"""The short-code codec: round trips and bounds."""

from __future__ import annotations

import pytest
import trio

from p2pshare.node.pbwire import field_bytes, field_varint, frame
from p2pshare.node.shortcode.wire import (
    MAX_BOX,
    MsgType,
    Refusal,
    ShortCodeMsg,
    WireError,
    decode,
    encode,
    read_message,
)


@pytest.mark.parametrize(
    "msg",
    [
        ShortCodeMsg(MsgType.HELLO, pake=b"A" * 33),
        ShortCodeMsg(MsgType.REPLY, pake=b"B" * 33, box=b"x" * 200),
        ShortCodeMsg(MsgType.REFUSED, reason=Refusal.EXPIRED),
        ShortCodeMsg(MsgType.REFUSED, reason=Refusal.TOO_MANY_FAILURES),
        ShortCodeMsg(MsgType.CONFIRM, mac=b"m" * 32),
    ],
)
async def test_round_trip_through_a_stream(msg: ShortCodeMsg) -> None:
    data = bytearray(encode(msg) + b"next")

    async def read(n: int) -> bytes:
        chunk = bytes(data[:n])
        del data[:n]
        return chunk

    assert await read_message(read) == msg
    assert data == b"next"  # never a byte past the message


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (field_varint(1, 9), "unknown type"),
        (field_varint(1, 1) + field_bytes(2, b"A" * 32), "PAKE message of 32 bytes"),
        (field_varint(1, 2) + field_bytes(2, b"B" * 33) + field_bytes(3, b"x" * 16), "sealed code of 16 bytes"),
        (field_varint(1, 2) + field_bytes(2, b"B" * 33) + field_bytes(3, b"x" * (MAX_BOX + 1)), "sealed code of"),
        (field_varint(1, 2) + field_bytes(3, b"x" * (MAX_BOX + 100)), "too large"),
        (field_varint(1, 3), "unknown reason"),
        (field_varint(1, 4) + field_bytes(4, b"m" * 31), "confirmation of 31 bytes"),
        (b"\xff", "malformed"),
    ],
)
def test_bad_messages(body: bytes, why: str) -> None:
    with pytest.raises(WireError, match=why):
        decode(body)


async def test_oversized_frame_is_refused_before_reading_it() -> None:
    data = bytearray(frame(b"\x00" * (MAX_BOX + 1000)))

    async def read(n: int) -> bytes:
        chunk = bytes(data[:n])
        del data[:n]
        return chunk

    with pytest.raises(WireError):
        await read_message(read)
    assert len(data) > MAX_BOX  # the body was never read
    await trio.lowlevel.checkpoint()
