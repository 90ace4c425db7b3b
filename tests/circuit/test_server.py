"""The HOP server with real py-libp2p hosts in one process: limits and answers."""

from __future__ import annotations

import hashlib
import logging
import time

import multiaddr
import pytest
import trio

from p2pshare.node.circuit.voucher import open_voucher
from p2pshare.node.circuit.wire import HOP_PROTOCOL_ID, HopType, Limit, Status, read_hop
from p2pshare.node.host import StreamError
from tests.relay._util import RawTarget, connect, pid_bytes, relay_and_hosts, reserve


async def test_reservation_answer() -> None:
    async with relay_and_hosts(1, reservation_ttl=600) as (relay, server, (a,)):
        answer = await reserve(a, relay)
        assert answer.type == HopType.STATUS and answer.status == Status.OK
        r = answer.reservation
        assert r is not None and abs(r.expire - (time.time() + 600)) < 5
        addrs = [str(multiaddr.Multiaddr(x)) for x in r.addrs]
        assert addrs and all(x.endswith(f"/p2p/{relay.peer_id}") for x in addrs)
        assert answer.limit is None  # unlimited by default: no Limit field
        assert r.voucher is not None
        v = open_voucher(r.voucher)
        assert (v.relay, v.peer, v.expiration) == (pid_bytes(relay.peer_id), pid_bytes(a.peer_id), r.expire)
        assert len(server.book) == 1


@pytest.mark.parametrize(
    "limits, flag",
    [
        ({"max_reservations": 1}, "--max-reservations 1"),
        ({"max_reservations_per_ip": 1}, "--max-reservations-per-ip 1"),
    ],
)
async def test_reservation_limits(limits: dict[str, int], flag: str, caplog: pytest.LogCaptureFixture) -> None:
    async with relay_and_hosts(2, **limits) as (relay, server, (a, b)):
        assert (await reserve(a, relay)).status == Status.OK
        with caplog.at_level(logging.INFO, "p2pshare.node.circuit.hop"):
            answer = await reserve(b, relay)
        assert answer.status == Status.RESERVATION_REFUSED and answer.reservation is None
        assert any(flag in r.getMessage() and b.peer_id in r.getMessage() for r in caplog.records)
        assert (await reserve(a, relay)).status == Status.OK  # a refresh still works


async def test_no_reservation() -> None:
    async with relay_and_hosts(2) as (relay, server, (a, b)):
        answer, _ = await connect(b, relay, a)
        assert answer.status == Status.NO_RESERVATION


async def test_malformed_message_is_answered() -> None:
    async with relay_and_hosts(1) as (relay, server, (a,)):
        await a.connect(relay.peer_id, relay.listen_addrs(), timeout=5)
        s = await a.open_stream(relay.peer_id, HOP_PROTOCOL_ID)
        await s.write(b"\x03\xff\xff\xff")
        with trio.fail_after(5):
            answer = await read_hop(s.read)
        assert answer.status == Status.MALFORMED_MESSAGE


async def test_circuits_per_reservation(caplog: pytest.LogCaptureFixture) -> None:
    async with relay_and_hosts(3, max_circuits_per_reservation=1) as (relay, server, (a, b, c)):
        RawTarget(a)
        assert (await reserve(a, relay)).status == Status.OK
        first, stream = await connect(b, relay, a)
        assert first.status == Status.OK
        with caplog.at_level(logging.INFO, "p2pshare.node.circuit.hop"):
            second, _ = await connect(c, relay, a)
        assert second.status == Status.RESOURCE_LIMIT_EXCEEDED
        assert any("--max-circuits-per-reservation 1" in r.getMessage() for r in caplog.records)
        await stream.close_write()  # the first circuit ends; its slot frees
        with trio.fail_after(5):
            while server.book.circuit_count:
                await trio.sleep(0.05)
        assert (await connect(c, relay, a))[0].status == Status.OK


async def test_circuits_per_source_peer(caplog: pytest.LogCaptureFixture) -> None:
    async with relay_and_hosts(3, max_circuits_per_peer=1) as (relay, server, (a, b, c)):
        RawTarget(a)
        assert (await reserve(a, relay)).status == Status.OK
        first, _ = await connect(b, relay, a)
        assert first.status == Status.OK
        with caplog.at_level(logging.INFO, "p2pshare.node.circuit.hop"):
            second, _ = await connect(b, relay, a)
        assert second.status == Status.RESOURCE_LIMIT_EXCEEDED
        assert any("--max-circuits-per-peer 1" in r.getMessage() for r in caplog.records)
        assert (await connect(c, relay, a))[0].status == Status.OK  # another source


async def test_an_idle_circuit_is_ended() -> None:
    async with relay_and_hosts(2, circuit_idle=1) as (relay, server, (a, b)):
        RawTarget(a)
        await reserve(a, relay)
        answer, stream = await connect(b, relay, a)
        assert answer.status == Status.OK
        start = time.monotonic()
        with trio.fail_after(5), pytest.raises(StreamError):
            await stream.read(10)  # nothing comes: only the relay's reset ends this
        assert 0.9 <= time.monotonic() - start < 4
        with trio.fail_after(5):
            while server.book.circuit_count:
                await trio.sleep(0.05)


async def test_duration_limit() -> None:
    async with relay_and_hosts(2, circuit_duration=1) as (relay, server, (a, b)):
        target = RawTarget(a)
        await reserve(a, relay)
        answer, stream = await connect(b, relay, a)
        assert answer.status == Status.OK and answer.limit == Limit(1, 0)
        start = time.monotonic()
        with trio.fail_after(5), pytest.raises(StreamError):
            await stream.read(10)  # nothing comes back: only the relay's reset ends this
        assert 0.9 <= time.monotonic() - start < 4
        assert target.connects[0].limit == Limit(1, 0)


async def test_data_limit_and_unlimited() -> None:
    limit = 64 << 10
    async with relay_and_hosts(2, circuit_data=limit) as (relay, server, (a, b)):
        target = RawTarget(a)
        await reserve(a, relay)
        answer, stream = await connect(b, relay, a)
        assert answer.limit == Limit(0, limit)
        with trio.fail_after(10):
            try:
                await stream.write(b"d" * (limit * 3))
                await stream.close_write()
                await stream.read(100)
            except StreamError:
                pass
            await target.done.wait()
        assert target.results == [f"reset after {limit}"]

    payload = b"u" * (3 << 20)  # far past the 128 KiB other relays default to
    async with relay_and_hosts(2, circuit_data=0) as (relay, server, (a, b)):
        target = RawTarget(a)
        await reserve(a, relay)
        answer, stream = await connect(b, relay, a)
        assert answer.limit is None
        with trio.fail_after(10):
            await stream.write(payload)
            await stream.close_write()
            reply = await stream.read(200)
        assert reply == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}".encode()


async def test_a_reservation_protects_its_connection_from_pruning() -> None:
    """py-libp2p's pruner closes idle connections above its high watermark;
    a reservation holder's connection is idle by design and must survive."""
    from libp2p.peer.id import ID

    async with relay_and_hosts(1) as (relay, server, (a,)):
        tags = relay.libp2p.get_network().tag_store
        assert (await reserve(a, relay)).status == Status.OK
        assert tags.is_protected(ID.from_base58(a.peer_id))
        for conn in relay.connections(a.peer_id):
            await conn.close()
        with trio.fail_after(5):
            await relay.wait_disconnected(a.peer_id)
        server.sweep()
        assert not tags.is_protected(ID.from_base58(a.peer_id))


async def test_a_reservation_expired_by_another_reserve_unprotects_its_peer() -> None:
    """A RESERVE drops the expired reservations first; their peers, still
    connected, must lose the protection then (the sweeper never sees them)."""
    from libp2p.peer.id import ID

    async with relay_and_hosts(2, reservation_ttl=1) as (relay, server, (a, b)):
        tags = relay.libp2p.get_network().tag_store
        assert (await reserve(a, relay)).status == Status.OK
        assert tags.is_protected(ID.from_base58(a.peer_id))
        await trio.sleep(1.2)  # a's reservation expires; a stays connected
        assert (await reserve(b, relay)).status == Status.OK
        server.sweep()
        assert relay.connections(a.peer_id) and not server.book.reservations_of(a.peer_id, trio.current_time())
        assert not tags.is_protected(ID.from_base58(a.peer_id))
        assert tags.is_protected(ID.from_base58(b.peer_id))
