"""``LibP2PByteStream.read_pieces`` (``_libp2p_streambuf.read_pieces``): a
stream's data as the read-only pieces its buffer keeps, not joined -- with
real hosts on loopback, against the ordinary ``read``."""

from __future__ import annotations

import os
import random
from typing import Any

import trio
from libp2p.crypto.ed25519 import create_new_key_pair

from p2pshare.node import _libp2p_patches as P
from p2pshare.node.host import StreamError, open_host

PROTO = "/p2pshare-test/pieces/1"
# More than the 16 MiB receive window: the reads must grant credit again.
SIZE = 24 << 20


async def _serve_and_read(serve: Any, read_all: Any) -> Any:
    P.apply()
    async with open_host(create_new_key_pair()) as server, open_host(create_new_key_pair()) as client:
        server.set_stream_handler(PROTO, serve)
        await client.connect(server.peer_id, server.listen_addrs(), timeout=5)
        stream = await client.open_stream(server.peer_id, PROTO)
        await stream.write(b"go")  # the first read also checks the lazy protocol answer
        with trio.fail_after(30):
            return await read_all(stream)


async def test_pieces_are_the_stream_in_order_read_only_and_mostly_views() -> None:
    data = os.urandom(SIZE)
    rng = random.Random(7)

    async def serve(stream: Any) -> None:
        assert await stream.read(2) == b"go"
        pos = 0
        while pos < len(data):
            n = rng.choice((1, 100, 5000, 65_507, 70_000, 1 << 20, 3 << 20))
            await stream.write(data[pos : pos + n])
            pos += n
        await stream.close_write()

    pieces: list[Any] = []

    async def read_all(stream: Any) -> None:
        while True:
            got = await stream.read_pieces(rng.choice((1, 1000, 1 << 20, 2 << 20)))
            if not got:
                return
            assert sum(len(p) for p in got) > 0
            pieces.extend(got)

    await _serve_and_read(serve, read_all)
    assert b"".join(pieces) == data
    assert all(type(p) in (bytes, memoryview) for p in pieces)
    assert all(memoryview(p).readonly for p in pieces)
    # The fast path ran: most bytes came as views of decrypted Noise
    # messages, never joined into a new buffer.
    viewed = sum(len(p) for p in pieces if type(p) is memoryview)
    assert viewed > SIZE // 2


async def test_a_reset_fails_read_pieces_as_it_fails_read() -> None:
    async def serve(stream: Any) -> None:
        assert await stream.read(2) == b"go"
        await stream.write(os.urandom(300_000))
        await trio.sleep(0.2)
        await stream.reset()

    async def read_all(stream: Any) -> str:
        got = 0
        try:
            while True:
                pieces = await stream.read_pieces(1 << 20)
                if not pieces:
                    return f"eof after {got}"
                got += sum(len(p) for p in pieces)
        except StreamError as e:
            return f"{got} then {e}"

    outcome = await _serve_and_read(serve, read_all)
    assert outcome.startswith("300000 then ") and "reset" in outcome


async def test_bad_sizes_are_refused() -> None:
    async def serve(stream: Any) -> None:
        await stream.read(2)

    async def read_all(stream: Any) -> None:
        for bad in (0, -1):
            try:
                await stream.read_pieces(bad)
            except ValueError:
                continue
            raise AssertionError(f"read_pieces({bad}) was accepted")

    await _serve_and_read(serve, read_all)
