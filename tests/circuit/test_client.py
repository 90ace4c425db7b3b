"""The relay client against a real in-process relay: what happens to a held reservation."""

from __future__ import annotations

from typing import cast

import trio

from p2pshare.node.circuit.client import open_relay_client
from p2pshare.node.circuit.hop import RelayServer
from p2pshare.node.host import Connection, ConnectionEvent, ConnectionPath
from tests.relay._util import relay_and_hosts


async def _opened(events: trio.MemoryReceiveChannel[ConnectionEvent], peer: str) -> ConnectionEvent:
    async for event in events:
        if event.opened and event.peer_id == peer:
            return event
    raise AssertionError("event stream ended")


def _reserved_on(server: RelayServer) -> list[Connection]:
    """The relay-side connections holding a reservation (the hop server keys them so)."""
    return [cast(Connection, c) for c in server.book.connections()]


async def test_reservation_follows_its_own_connection() -> None:
    """A reservation lives on one connection (spec); when that one closes
    while another connection to the relay stays up, the client reserves
    again at once.

    The soak (scripts/soak) found this: a sharer's start-up leaves two or
    three parallel connections to its relay; py-libp2p later closes the
    surplus (one connection per peer). When the closed one carried the
    reservation, the relay dropped it, every circuit to the sharer was
    refused NO_RESERVATION, and the client, still connected to the relay,
    waited for a disconnect that never came (until its refresh, 30 min).
    """
    async with relay_and_hosts(1) as (relay, server, (a,)):
        relay_addr = f"{relay.listen_addrs()[0]}/p2p/{relay.peer_id}"
        async with open_relay_client(a, [relay_addr], want=1) as client:
            assert await client.wait_reserved(5)
            (held,) = _reserved_on(server)
            await a.dial_direct(relay.peer_id, relay.listen_addrs()[0])  # a second connection, left open
            assert len(a.connections(relay.peer_id)) == 2
            await held.close()  # the relay's side ends the reservation's connection
            with trio.fail_after(10):
                while not any(c != held and not c.is_closed for c in _reserved_on(server)):
                    await trio.sleep(0.05)
            assert a.is_connected(relay.peer_id) and client.reservations()


async def test_a_relayed_connection_is_relayed_in_its_opened_event() -> None:
    """DCUtR decides from the opened event alone (no wait for a later mark):
    both ends of a circuit see RELAYED there, before identify has run."""
    async with relay_and_hosts(2) as (relay, _server, (a, b)):
        raddr = f"{relay.listen_addrs()[0]}/p2p/{relay.peer_id}"
        async with open_relay_client(b, [raddr], want=1) as b_client, open_relay_client(a, [raddr], want=0) as client:
            assert await b_client.wait_reserved(5)
            with trio.fail_after(10):
                async with a.connection_events() as a_events, b.connection_events() as b_events:
                    await client.dial_via_relay(b.peer_id, raddr)
                    for events, peer in ((a_events, b.peer_id), (b_events, a.peer_id)):
                        event = await _opened(events, peer)
                        assert event.path is ConnectionPath.RELAYED and event.connection.path is ConnectionPath.RELAYED


async def test_circuit_limits_are_kept_only_for_connected_peers() -> None:
    """The limit a relay announced for a circuit is read when the connection
    is made; a node dialling through limited relays for months must not keep
    one entry per peer it ever dialled (it did, until stop 39)."""
    async with relay_and_hosts(3, circuit_data=1 << 20) as (relay, _server, (a, b, c)):
        raddr = f"{relay.listen_addrs()[0]}/p2p/{relay.peer_id}"
        async with (
            open_relay_client(b, [raddr], want=1) as b_client,
            open_relay_client(c, [raddr], want=1) as c_client,
            open_relay_client(a, [raddr], want=0) as client,
        ):
            assert await b_client.wait_reserved(5) and await c_client.wait_reserved(5)
            with trio.fail_after(10):
                await client.dial_via_relay(b.peer_id, raddr)
                limit = client.circuit_limit(b.peer_id)
                assert limit is not None and limit.data == 1 << 20
                await a.disconnect(b.peer_id)
                await client.dial_via_relay(c.peer_id, raddr)
            assert client.circuit_limit(c.peer_id) is not None
            assert set(client._circuit_limits) == {c.peer_id}  # b's entry went with its connection
