"""Our ping responder (``node/ping.serve_ping``), in place of py-libp2p's
``PingService`` handler, which kept an entry per peer ID that ever pinged."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing

from p2pshare.node.host import open_host
from p2pshare.node.identity import generate_identity
from p2pshare.node.ping import PING_IDLE, PING_PROTOCOL, measure_rtt, serve_ping


class _Stream:
    """Reads come from ``chunks`` (then it blocks for ever, or ends if ``eof``)."""

    def __init__(self, chunks: list[bytes], *, eof: bool = False, broken: bool = False) -> None:
        self.chunks = list(chunks)
        self.eof = eof
        self.broken = broken
        self.written: list[bytes] = []

    async def read(self, n: int) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.broken:
            raise ConnectionError("reset")
        if self.eof:
            return b""
        await trio.sleep_forever()
        raise AssertionError

    async def write(self, data: bytes) -> None:
        self.written.append(data)


async def test_each_ping_is_echoed_whole_even_when_it_arrives_in_pieces() -> None:
    a, b = os.urandom(32), os.urandom(32)
    s = _Stream([a[:5], a[5:], b, b"cut"], eof=True)
    await serve_ping(s)  # type: ignore[arg-type]
    assert s.written == [a, b]  # the cut ping at the end is dropped


def test_an_idle_ping_stream_is_given_up_after_the_idle_time() -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    done_at: list[float] = []

    async def main() -> None:
        s = _Stream([os.urandom(32)])
        await serve_ping(s)  # type: ignore[arg-type]
        done_at.append(trio.current_time())
        assert len(s.written) == 1

    trio.run(main, clock=clock)
    assert done_at == [pytest.approx(PING_IDLE)]


async def test_a_broken_stream_ends_the_responder_quietly() -> None:
    s = _Stream([os.urandom(32)], broken=True)
    await serve_ping(s)  # type: ignore[arg-type]
    assert len(s.written) == 1


async def test_real_hosts_ping_our_responder_and_it_keeps_no_table() -> None:
    async with open_host(generate_identity()) as server:
        handler = server.libp2p.get_mux().handlers[PING_PROTOCOL]  # type: ignore[index]
        assert getattr(handler, "__self__", None) is None  # not a PingService's bound method
        for _ in range(3):
            async with open_host(generate_identity()) as client:
                await client.connect(server.peer_id, server.listen_addrs(), timeout=5)
                stream = await client.open_stream(server.peer_id, PING_PROTOCOL)
                assert await measure_rtt(stream, 3) >= 0
                await stream.close_write()
