"""``_libp2p_impl.StreamIO``, the byte pipe under a relayed connection: any
mix of small exact reads (the Noise handshake) and bulk reads (P1) returns
the outer stream's bytes in order, and a bulk read with nothing read ahead
is the outer stream's own read (no read-ahead copies)."""

from __future__ import annotations

import os
import random

import pytest
import trio

from p2pshare.node._libp2p_impl import _BULK_READ, StreamIO


class _Outer:
    """An outer stream that returns up to ``n`` of what it has, in random bits."""

    def __init__(self, data: bytes, rng: random.Random) -> None:
        self.data, self.pos, self.rng = data, 0, rng
        self.reads: list[int] = []

    async def read(self, n: int) -> bytes:
        await trio.lowlevel.checkpoint()
        self.reads.append(n)
        take = min(n, self.rng.choice((1, 100, 70_000, 1 << 20)), len(self.data) - self.pos)
        out = self.data[self.pos : self.pos + take]
        self.pos += take
        return out


@pytest.mark.parametrize("seed", range(8))
async def test_any_mix_of_reads_returns_the_stream_in_order(seed: int) -> None:
    rng = random.Random(seed)
    data = os.urandom(3 << 20)
    io = StreamIO(_Outer(data, rng))  # type: ignore[arg-type]
    got = bytearray()
    while len(got) < len(data):
        n = rng.choice((2, 50, 65_535, _BULK_READ, 256 << 10, None))
        piece = await io.read(n)
        assert piece and (n is None or len(piece) <= n)
        got += piece
    assert got == data


async def test_a_bulk_read_is_the_outer_streams_read() -> None:
    data = os.urandom(1 << 20)
    outer = _Outer(data, random.Random(1))
    io = StreamIO(outer)  # type: ignore[arg-type]
    got = b""
    while len(got) < len(data):
        got += await io.read(256 << 10)
    assert got == data and set(outer.reads) == {256 << 10}  # no 1 MiB read-ahead
