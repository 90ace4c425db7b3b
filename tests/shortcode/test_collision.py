"""Two sharers whose short codes share a number, in one process over
loopback with a DHT server node as the bootstrap: the receiver finds both,
gets the right one, and never costs the right sharer a try."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from p2pshare.node.api import Node, NodeConfig, ShareInfo
from p2pshare.node.shortcode import ShortCodeAdvertised, ShortCodeEvent, WrongWordsError
from p2pshare.sharecode.short import ShortCode

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


class _Events(list[ShortCodeEvent]):
    """Collects a sharer's short-code events; ``advertised`` is set when the
    DHT took its record (awaited, no polling; the bound is fail_after)."""

    def __init__(self) -> None:
        super().__init__()
        self.advertised = trio.Event()

    def __call__(self, event: ShortCodeEvent) -> None:
        self.append(event)
        if isinstance(event, ShortCodeAdvertised):
            assert event.peers >= 1, event
            self.advertised.set()


async def test_colliding_numbers_each_tried_right_one_never_burned(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("from A")
    (tmp_path / "b.txt").write_text("from B")
    with trio.fail_after(90):
        async with Node(NodeConfig(listen_addrs=[LOOPBACK], dht_server=True, autorelay=False)) as boot:
            addr = f"{boot.host.listen_addrs()[0]}/p2p/{boot.peer_id}"
            cfg = NodeConfig(listen_addrs=[LOOPBACK], bootstrap=[addr], autorelay=False)
            async with Node(cfg) as a, Node(cfg) as b, Node(cfg) as rx:
                ev_a, ev_b = _Events(), _Events()
                code_a = ShortCode(4127, ("acid", "zoom", "yoga"))
                code_b = ShortCode(4127, ("tulip", "viral", "spoon"))
                info_a = await a.start_sharing("A", "", [tmp_path / "a.txt"])
                info_b = await b.start_sharing("B", "", [tmp_path / "b.txt"])
                # A gets room for B's receivers: each may try A first and cost it one try.
                offer_a = a.offer_short_code(info_a, tries=10, ttl=600, on_event=ev_a, code=code_a)
                offer_b = b.offer_short_code(info_b, tries=3, ttl=600, on_event=ev_b, code=code_b)
                await ev_a.advertised.wait()
                await ev_b.advertised.wait()
                for _ in range(4):
                    got = await rx.resolve_short_code(code_b, timeout=30)
                    assert got.peer_id == b.peer_id and got.encryption_key == info_b.code.encryption_key
                    assert offer_b.failures == 0
                # B's receivers cost A at most one try each (A may be tried first).
                assert offer_a.failures <= 4 and offer_a.claims == 0 and offer_b.claims == 4
                a_before, b_before = offer_a.failures, offer_b.failures
                got = await rx.resolve_short_code(code_a, timeout=30)
                assert got.peer_id == a.peer_id and offer_a.failures == a_before
                assert offer_b.failures <= b_before + 1  # B, tried first, may lose one
                # Words that match neither: both are tried, both count it, one error.
                before = offer_a.failures + offer_b.failures
                try:
                    await rx.resolve_short_code(ShortCode(4127, ("acid", "zoom", "zone")), timeout=30)
                except WrongWordsError as exc:
                    assert "tried 2 sharers" in str(exc)
                else:
                    raise AssertionError("wrong words must fail")
                assert offer_a.failures + offer_b.failures == before + 2


CODE_A = ShortCode(4127, ("acid", "zoom", "yoga"))


@asynccontextmanager
async def _one_sharer(tmp_path: Path) -> AsyncIterator[tuple[Node, Node, Node, ShareInfo]]:
    """A DHT bootstrap node, a sharer A whose short code ``CODE_A`` the DHT
    holds, and a receiver: (boot, a, rx, A's share)."""
    (tmp_path / "a.txt").write_text("from A")
    async with Node(NodeConfig(listen_addrs=[LOOPBACK], dht_server=True, autorelay=False)) as boot:
        addr = f"{boot.host.listen_addrs()[0]}/p2p/{boot.peer_id}"
        cfg = NodeConfig(listen_addrs=[LOOPBACK], bootstrap=[addr], autorelay=False)
        async with Node(cfg) as a, Node(cfg) as rx:
            ev_a = _Events()
            info_a = await a.start_sharing("A", "", [tmp_path / "a.txt"])
            a.offer_short_code(info_a, tries=3, ttl=600, on_event=ev_a, code=CODE_A)
            await ev_a.advertised.wait()
            yield boot, a, rx, info_a


async def test_a_failed_dht_query_is_retried_and_keeps_the_only_peer(tmp_path: Path) -> None:
    """The receiver's first provider query fails (a timeout under load,
    say), and its routing table holds one peer: the peer stays in the table
    and the lookup is repeated within the deadline, so the code resolves.
    (In CI this once ended "no sharer found": the failure emptied the table.)"""
    from p2pshare.node.discovery._rpc import RpcError

    with trio.fail_after(60):
        async with _one_sharer(tmp_path) as (boot, a, rx, info_a):
            client = rx.discovery._client
            real = client.get_providers
            failures: list[str] = []

            async def fails_once(peer: str, *args: object, **kwargs: object) -> object:
                if not failures:
                    failures.append(peer)
                    raise RpcError("injected: the query timed out")
                return await real(peer, *args, **kwargs)  # type: ignore[arg-type]

            client.get_providers = fails_once  # type: ignore[method-assign]
            got = await rx.resolve_short_code(CODE_A, timeout=30)
            assert got.peer_id == a.peer_id and got.encryption_key == info_a.code.encryption_key
            assert failures == [boot.peer_id]
            assert rx.discovery.table.size() >= 1


async def test_one_deadline_covers_the_lookup_and_the_pake(tmp_path: Path) -> None:
    """``timeout`` is one deadline from the call, not one per phase: a
    lookup that takes most of it leaves the PAKE only the rest. Here the
    sharer's short-code handler never answers, and the receiver's DHT
    lookup is slowed to 60 % of the deadline; it must give up at the
    deadline (it used to start the PAKE phase with a fresh one: 1.6×)."""
    from p2pshare.node.errors import PeerUnreachableError
    from p2pshare.node.host import LibP2PByteStream
    from p2pshare.node.shortcode import PROTOCOL_ID as SHORTCODE_PROTOCOL

    timeout, lag = 4.0, 2.4
    with trio.fail_after(60):
        async with _one_sharer(tmp_path) as (boot, a, rx, info_a):
            silent = trio.Event()

            async def never_answers(stream: LibP2PByteStream) -> None:
                silent.set()
                await trio.sleep_forever()

            a.host.set_stream_handler(SHORTCODE_PROTOCOL, never_answers)
            real = rx.discovery.find_providers

            async def slow_lookup(*args: object, **kwargs: object) -> object:
                await trio.sleep(lag)
                return await real(*args, **kwargs)  # type: ignore[arg-type]

            rx.discovery.find_providers = slow_lookup  # type: ignore[method-assign]
            await rx.discovery.wait_bootstrapped(10)
            start = trio.current_time()
            try:
                await rx.resolve_short_code(CODE_A, timeout=timeout)
            except PeerUnreachableError as exc:
                assert "could not reach it" in str(exc), exc
            else:
                raise AssertionError("a sharer that never answers cannot hand over the code")
            elapsed = trio.current_time() - start
            assert silent.is_set()  # the lookup found A and the PAKE began
            assert timeout - 0.1 <= elapsed < timeout + 1.0, elapsed


async def test_silent_fake_providers_do_not_hold_the_receiver_ten_seconds_each(tmp_path: Path) -> None:
    """A hostile-peer review (stop 43): a fake provider that reads HELLO and
    never answers held the receiver for STEP_TIMEOUT (10 s) before the next
    candidate's PAKE, one fake after the other. Three fakes advertised
    before the sharer: the code resolves well within a 10 s deadline."""
    import time

    from p2pshare.node.host import LibP2PByteStream
    from p2pshare.node.shortcode import PROTOCOL_ID as SHORTCODE_PROTOCOL
    from p2pshare.sharecode.short import window_keys

    (tmp_path / "a.txt").write_text("from A")
    stalled: list[str] = []

    async def stall(stream: LibP2PByteStream) -> None:
        stalled.append(stream.remote_peer_id)
        await stream.read(4096)  # the receiver's HELLO
        await trio.sleep_forever()

    with trio.fail_after(90):
        async with Node(NodeConfig(listen_addrs=[LOOPBACK], dht_server=True, autorelay=False)) as boot:
            addr = f"{boot.host.listen_addrs()[0]}/p2p/{boot.peer_id}"
            cfg = NodeConfig(listen_addrs=[LOOPBACK], bootstrap=[addr], autorelay=False)
            async with Node(cfg) as f1, Node(cfg) as f2, Node(cfg) as f3, Node(cfg) as a, Node(cfg) as rx:
                now = time.time()
                for fake in (f1, f2, f3):
                    fake.host.set_stream_handler(SHORTCODE_PROTOCOL, stall)
                    await fake.discovery.wait_bootstrapped(10)
                    for key in window_keys(CODE_A.number, now, now):
                        assert await fake.discovery.advertise(key) >= 1
                events = _Events()
                info_a = await a.start_sharing("A", "", [tmp_path / "a.txt"])
                a.offer_short_code(info_a, tries=3, ttl=600, on_event=events, code=CODE_A)
                await events.advertised.wait()
                got = await rx.resolve_short_code(CODE_A, timeout=10)
                assert got.peer_id == a.peer_id and got.encryption_key == info_a.code.encryption_key
