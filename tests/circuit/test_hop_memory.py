"""What HOP and STOP streams book in the resource manager, with real py-libp2p hosts.

A stream is granted (and an inbound one books) the large yamux window only
once bulk data flows on it: a relay's HOP stream when its circuit is
spliced, a client's STOP stream when it carries the relayed connection.
"""

from __future__ import annotations

from typing import Any

import trio

from p2pshare.node import _libp2p_rcmgr
from p2pshare.node._libp2p_speed import RECV_WINDOW
from p2pshare.node.circuit.client import open_relay_client
from p2pshare.node.circuit.wire import HOP_PROTOCOL_ID, STOP_PROTOCOL_ID, Status
from p2pshare.node.host import Host, LibP2PByteStream
from p2pshare.node.rcmgr.limits import STREAM_BASE_MEMORY
from tests.relay._util import RawTarget, connect, relay_and_hosts, reserve


def _usage(host: Host, protocol: str) -> dict[str, int]:
    manager = _libp2p_rcmgr.manager_of(host.libp2p.get_network())
    assert manager is not None
    empty = {"conns": 0, "streams": 0, "memory": 0}
    found: Any = manager.usage().get(f"protocol {protocol}", empty)
    return dict(found)


async def _until(check: Any, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.02)


async def test_hop_streams_holding_a_request_book_only_the_initial_window() -> None:
    """8 identities x 4 HOP streams that sent one byte and went quiet: each
    keeps 256 KiB, and an honest RESERVE is still answered. (Each used to be
    granted 16 MiB on that first read: the whole 512 MiB HOP budget, and the
    honest stream was reset.)"""
    async with relay_and_hosts(9) as (relay, server, hosts):
        attackers, honest = hosts[:8], hosts[8]
        held: list[LibP2PByteStream] = []
        for h in attackers:
            await h.connect(relay.peer_id, relay.listen_addrs(), timeout=5)
            for _ in range(4):
                s = await h.open_stream(relay.peer_id, HOP_PROTOCOL_ID)
                await s.write(b"\x05")  # a length prefix, then silence
                held.append(s)
        await _until(lambda: _usage(relay, HOP_PROTOCOL_ID)["streams"] == 32)
        await trio.sleep(0.3)  # every stream has read its byte
        assert _usage(relay, HOP_PROTOCOL_ID)["memory"] == 32 * STREAM_BASE_MEMORY
        assert (await reserve(honest, relay)).status == Status.OK


async def test_a_circuit_books_the_large_window_only_once_bytes_flow() -> None:
    async with relay_and_hosts(2) as (relay, server, (a, b)):
        RawTarget(a)
        assert (await reserve(a, relay)).status == Status.OK
        answer, stream = await connect(b, relay, a)
        assert answer.status == Status.OK
        await _until(lambda: server.book.circuit_count == 1)
        await trio.sleep(0.3)
        # Spliced but idle: the HOP stream still holds the initial window only.
        assert _usage(relay, HOP_PROTOCOL_ID) == {"conns": 0, "streams": 1, "memory": STREAM_BASE_MEMORY}
        # Bytes flow: the relay grants (and books) the large window for throughput.
        await stream.write(b"x" * (1 << 20))
        await _until(lambda: _usage(relay, HOP_PROTOCOL_ID)["memory"] == RECV_WINDOW)


async def test_a_relayed_connection_grants_its_stop_stream_the_large_window() -> None:
    """The target's STOP stream carries the relayed connection: from the
    upgrade on it must be granted the large window, or relayed uploads crawl."""
    async with relay_and_hosts(2) as (relay, server, (a, b)):
        relay_addr = f"{relay.listen_addrs()[0]}/p2p/{relay.peer_id}"
        async with open_relay_client(a, [relay_addr], want=1) as target, open_relay_client(b, []) as dialer:
            assert await target.wait_reserved(5)
            await dialer.dial_via_relay(a.peer_id, relay_addr)
            assert b.connection_path(a.peer_id) == "relayed"
            await _until(lambda: _usage(a, STOP_PROTOCOL_ID)["memory"] == RECV_WINDOW)


async def test_a_relay_with_every_circuit_busy_still_answers_a_reservation() -> None:
    """64 circuits (8 sources x 8 targets, the default limits) each moving
    bytes: every HOP stream books the large window, and the HOP budget still
    has room for an honest RESERVE (it used to be full at 32 such circuits)."""
    limits = {  # the test's hosts share 127.0.0.1
        "max_circuits_per_ip": 64,
        "max_reservations_per_ip": 16,
        "max_circuits_per_ip_to_target": 8,
    }
    async with relay_and_hosts(17, **limits) as (relay, server, hosts):
        targets, sources, honest = hosts[:8], hosts[8:16], hosts[16]
        for t in targets:
            RawTarget(t)
            assert (await reserve(t, relay)).status == Status.OK
        held = []
        for src in sources:
            for t in targets:
                answer, s = await connect(src, relay, t)
                assert answer.status == Status.OK
                await s.write(b"x")
                held.append(s)
        await _until(lambda: _usage(relay, HOP_PROTOCOL_ID)["streams"] == 64)
        await trio.sleep(1.0)  # every relay-side HOP stream has read its byte
        assert (await reserve(honest, relay)).status == Status.OK
        # The RESERVE's stream keeps its place until the honest client's end
        # of it arrives (``_libp2p_rcmgr._linger``), then only the circuits book.
        await _until(lambda: _usage(relay, HOP_PROTOCOL_ID)["memory"] == 64 * RECV_WINDOW)


def test_the_limits_bulk_window_is_the_one_granted() -> None:
    from p2pshare.node.rcmgr.limits import BULK_WINDOW

    assert BULK_WINDOW == RECV_WINDOW


async def test_reservations_refreshed_on_one_connection_leave_no_stream_events() -> None:
    """A long-uptime review (stop 43): a relay kept one yamux ``stream_events``
    entry for every stream it answered on a long-lived connection (upstream's
    readers put a fresh event back after the stream was forgotten): 2,199 of
    2,212 RESERVE streams, ~410 bytes each, until the connection closed."""
    from p2pshare.node.circuit.wire import HopMessage, HopType
    from tests.relay._util import hop

    async with relay_and_hosts(1) as (relay, _server, (peer,)):
        for _ in range(200):
            answer, stream = await hop(peer, relay, HopMessage(HopType.RESERVE))
            assert answer.status is Status.OK
            await stream.close_write()
        await trio.sleep(0.3)
        [conn] = relay.libp2p.get_network().connections[peer.libp2p.get_id()]
        events = conn.muxed_conn.stream_events
        assert len(events) <= 2, len(events)
