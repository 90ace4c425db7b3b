"""relay.pump.splice over in-memory streams: limits, half-close, unlimited."""

from __future__ import annotations

import trio

from p2pshare.node.circuit.pump import splice
from p2pshare.node.circuit.wire import Limit


class Mem:
    """One end of an in-memory duplex byte stream."""

    def __init__(self, inbox: trio.MemoryReceiveChannel[bytes], outbox: trio.MemorySendChannel[bytes]) -> None:
        self.inbox, self.outbox = inbox, outbox
        self.was_reset = False
        self.closed_write = False
        self._pending = b""

    async def read(self, n: int) -> bytes:
        if not self._pending:
            try:
                self._pending = await self.inbox.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return b""
            if self._pending == b"RESET":
                raise ConnectionResetError("reset by peer")
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    async def write(self, data: bytes) -> None:
        await self.outbox.send(bytes(data))

    async def close_write(self) -> None:
        self.closed_write = True
        await self.outbox.aclose()

    async def reset(self) -> None:
        self.was_reset = True
        try:
            self.outbox.send_nowait(b"RESET")
        except Exception:
            pass


def pair() -> tuple[Mem, Mem]:
    a_send, b_recv = trio.open_memory_channel[bytes](64)
    b_send, a_recv = trio.open_memory_channel[bytes](64)
    return Mem(a_recv, a_send), Mem(b_recv, b_send)


async def _drain(m: Mem) -> bytes:
    out = bytearray()
    try:
        while data := await m.read(1 << 20):
            out += data
    except ConnectionResetError:
        pass
    return bytes(out)


async def test_half_close_both_ways() -> None:
    peer_a, relay_a = pair()
    relay_b, peer_b = pair()
    async with trio.open_nursery() as n:
        result: list[object] = []

        async def run() -> None:
            result.append(await splice(relay_a, relay_b))

        n.start_soon(run)
        await peer_a.write(b"hello")
        await peer_a.close_write()
        assert await _drain(peer_b) == b"hello"  # EOF propagated
        await peer_b.write(b"back")  # the other direction still flows
        await peer_b.close_write()
        assert await _drain(peer_a) == b"back"
    r = result[0]
    assert r.clean and (r.bytes_ab, r.bytes_ba) == (5, 4)  # type: ignore[attr-defined]


async def test_data_limit_forwards_exactly_the_limit_then_resets() -> None:
    peer_a, relay_a = pair()
    relay_b, peer_b = pair()
    async with trio.open_nursery() as n:
        result: list[object] = []

        async def run() -> None:
            result.append(await splice(relay_a, relay_b, Limit(0, 1000)))

        n.start_soon(run)
        await peer_a.write(b"x" * 600)
        await peer_a.write(b"y" * 600)
        got = await _drain(peer_b)
    assert got == b"x" * 600 + b"y" * 400
    assert result[0].reason == "data limit"  # type: ignore[attr-defined]
    assert relay_a.was_reset and relay_b.was_reset


async def test_duration_limit_resets() -> None:
    _peer_a, relay_a = pair()
    relay_b, _peer_b = pair()
    with trio.fail_after(5):
        r = await splice(relay_a, relay_b, Limit(1, 0))
    assert r.reason == "duration limit" and relay_a.was_reset and relay_b.was_reset


class _Source:
    """Yields the same block ``count`` times: cheap gigabytes."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.block = b"z" * (1 << 20)

    async def read(self, n: int) -> bytes:
        if not self.left:
            return b""
        self.left -= 1
        return self.block

    async def write(self, data: bytes) -> None:
        raise AssertionError("nothing flows back")

    async def close_write(self) -> None:
        pass

    async def reset(self) -> None:
        raise AssertionError("unlimited circuit must not be reset")


class _Sink(_Source):
    def __init__(self) -> None:
        super().__init__(0)
        self.got = 0

    async def write(self, data: bytes) -> None:
        self.got += len(data)


async def test_zero_means_unlimited_beyond_py_libp2p_default() -> None:
    # py-libp2p's RelayLimits(data=0) killed circuits at the first byte and its
    # default cap is 1 GiB; go/rust/js cap at 128 KiB. 0 must carry more.
    src, sink = _Source(1100), _Sink()
    r = await splice(src, sink, Limit(0, 0))
    assert r.clean and sink.got == 1100 << 20 > 1 << 30


async def _timed_transfer(size: int, **rates: object) -> float:
    """Seconds (trio's clock) for ``size`` bytes a -> b through a rate-capped splice."""
    peer_a, relay_a = pair()
    relay_b, peer_b = pair()
    started = trio.current_time()
    async with trio.open_nursery() as n:
        n.start_soon(lambda: splice(relay_a, relay_b, **rates))  # type: ignore[arg-type]
        for _ in range(size // 65536):
            await peer_a.write(b"z" * 65536)
        await peer_a.close_write()
        got = await _drain(peer_b)
        await peer_b.close_write()
    assert len(got) == size  # paced, never dropped
    return trio.current_time() - started


async def test_circuit_rate_paces_each_circuit(autojump_clock: trio.testing.MockClock) -> None:
    took = await _timed_transfer(4 << 20, circuit_rate=1 << 20)  # 4 MiB at 1 MiB/s
    assert 3.5 <= took <= 4.5, took


async def test_total_rate_is_shared_by_circuits(autojump_clock: trio.testing.MockClock) -> None:
    from p2pshare.node.circuit.limits import TokenBucket

    shared = TokenBucket(2 << 20)  # 2 MiB/s for the whole relay
    took: list[float] = []

    async def one() -> None:
        took.append(await _timed_transfer(4 << 20, total=shared))

    async with trio.open_nursery() as n:
        n.start_soon(one)
        n.start_soon(one)
    assert all(3.5 <= t <= 4.5 for t in took), took  # 8 MiB at 2 MiB/s, shared


async def test_an_idle_circuit_is_ended(autojump_clock: trio.testing.MockClock) -> None:
    peer_a, relay_a = pair()
    relay_b, peer_b = pair()
    started = trio.current_time()
    async with trio.open_nursery() as n:

        async def talk() -> None:  # a byte every 50 s, then silence
            for _ in range(3):
                await peer_a.write(b"k")
                await trio.sleep(50)

        n.start_soon(talk)
        result = await splice(relay_a, relay_b, idle=60)
    assert result.reason == "idle" and not result.clean and result.bytes_ab == 3
    assert 100 + 60 <= trio.current_time() - started <= 100 + 61  # 60 s after the last byte
    assert relay_a.was_reset and relay_b.was_reset


async def test_the_idle_watch_does_not_outlive_a_closed_circuit(autojump_clock: trio.testing.MockClock) -> None:
    peer_a, relay_a = pair()
    relay_b, peer_b = pair()
    async with trio.open_nursery() as n:
        n.start_soon(lambda: splice(relay_a, relay_b, idle=60))
        await peer_a.write(b"x")
        await peer_a.close_write()
        assert await _drain(peer_b) == b"x"
        await peer_b.close_write()
        with trio.fail_after(1):
            assert await _drain(peer_a) == b""
    assert not relay_a.was_reset and not relay_b.was_reset


def test_token_bucket_passes_a_burst_then_paces() -> None:
    from p2pshare.node.circuit.limits import TokenBucket

    b = TokenBucket(1000, burst=500)
    assert b.take(500, 0.0) == 0.0
    assert b.take(1000, 0.0) == 1.0  # in debt: wait until it is paid
    assert b.take(0, 2.0) == 0.0


async def test_a_cancelled_splice_still_says_what_it_carried() -> None:
    """A relay's stop cancels its open circuits; their bytes were never
    counted ("Relay stopped …: 0 B relayed; 1 circuit cut", a review)."""
    client, relay_a = pair()
    relay_b, server = pair()
    told: list[int] = []
    with trio.move_on_after(0.5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: splice(relay_a, relay_b, carried=told.append))
            await client.write(b"x" * 1000)
            await server.write(b"y" * 10)
            assert await server.read(1 << 20) == b"x" * 1000
            assert await client.read(1 << 20) == b"y" * 10
            await trio.sleep_forever()  # the circuit stays open until the stop
    assert told == [1010]
