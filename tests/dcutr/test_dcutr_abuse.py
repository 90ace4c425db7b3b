"""A peer cannot aim our DCUtR responder at a third party (real sockets, real hosts).

The attack: any peer with a relayed connection to us sends CONNECT listing a
victim's closed ports, then SYNC, and again; every refused SYN was re-dialed
(400 times a target) and rounds had no limit.
"""

from __future__ import annotations

import logging
import random
import re
import socket as stdlib_socket

import pytest
import trio

from p2pshare.node.circuit.client import open_relay_client
from p2pshare.node.dcutr._trio_punch import punch_tcp
from p2pshare.node.dcutr._trio_service import open_dcutr
from p2pshare.node.dcutr.policy import PunchConfig
from p2pshare.node.dcutr.wire import PROTOCOL_ID, HolePunch, MsgType, WireError, encode, read_message
from p2pshare.node.host import HostError
from p2pshare.node.natinfo.addrs import TcpAddr, encode_addr
from tests.relay._util import relay_and_hosts

PUNCH_LOG = "p2pshare.node.dcutr._trio_punch"
_DIALS = re.compile(r"no connection from :\d+ after (\d+) dial")


def _closed_ports(n: int) -> list[int]:
    """Ports nothing listens on (bound then closed): a SYN to them is refused at once."""
    out = []
    for _ in range(n):
        s = stdlib_socket.socket()
        s.bind(("127.0.0.1", 0))
        out.append(int(s.getsockname()[1]))
        s.close()
    return out


def _dials(caplog: pytest.LogCaptureFixture) -> list[int]:
    return [int(m.group(1)) for r in caplog.records if (m := _DIALS.search(r.getMessage()))]


async def test_refused_syns_to_claimed_addresses_are_capped_per_round(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=PUNCH_LOG)
    cfg = PunchConfig()
    targets = [TcpAddr("127.0.0.1", p) for p in _closed_ports(3)]
    local = ("127.0.0.1", _closed_ports(1)[0])
    got = await punch_tcp(local, targets, cfg, random.Random(1), trio.current_time() + cfg.round_window)
    assert got is None
    (dials,) = _dials(caplog)
    assert dials <= min(cfg.max_dials_per_round, 3 * cfg.max_dials_per_target), dials


async def test_responder_answers_a_bounded_number_of_rounds(caplog: pytest.LogCaptureFixture) -> None:
    """The attacker reserves on a relay, we dial it through the relay (so we
    are the DCUtR responder), and it asks for 12 rounds at closed loopback
    ports, 4 at a time (the resource manager's limit on concurrent dcutr
    streams from one peer) each wave after the last one ended: we answer our
    budget's 3 and send few SYNs in each (before: all 12, ~700 SYNs each)."""
    caplog.set_level(logging.DEBUG, logger=PUNCH_LOG)
    cfg = PunchConfig(allow_loopback=True, fresh_ports=False, round_window=0.5, answer_per_peer=3, answer_per_minute=10)
    victim_addrs = tuple(encode_addr(f"/ip4/127.0.0.1/tcp/{p}") for p in _closed_ports(3))
    async with relay_and_hosts(2) as (relay, _server, (attacker, node)):
        relay_addr = f"{relay.listen_addrs()[0]}/p2p/{relay.peer_id}"
        async with (
            open_relay_client(attacker, [relay_addr]) as held,
            open_dcutr(node, cfg, rng=random.Random(1)) as dcutr,
            open_relay_client(node, []) as client,
        ):
            assert await held.wait_reserved(5)
            await client.dial_via_relay(attacker.peer_id, f"{relay_addr}/p2p-circuit/p2p/{attacker.peer_id}")
            with trio.fail_after(5):  # the attacker's end of the circuit
                while not attacker.is_connected(node.peer_id):
                    await trio.sleep(0.02)
            answered: list[bool] = []

            async def one_round() -> None:
                stream = await attacker.open_stream(node.peer_id, PROTOCOL_ID)
                try:
                    await stream.write(encode(HolePunch(MsgType.CONNECT, victim_addrs)))
                    reply = await read_message(stream.read)
                    await stream.write(encode(HolePunch(MsgType.SYNC)))
                except (HostError, WireError, EOFError):
                    answered.append(False)
                    return
                answered.append(reply.type is MsgType.CONNECT)

            for _wave in range(3):
                async with trio.open_nursery() as nursery:
                    for _ in range(4):
                        nursery.start_soon(one_round)
                with trio.fail_after(10):  # every answered round has ended
                    while dcutr.busy(attacker.peer_id) or len(_dials(caplog)) < sum(answered):
                        await trio.sleep(0.05)
    assert answered.count(True) == 3 and len(answered) == 12, answered
    dials = _dials(caplog)
    assert len(dials) == 3 and all(0 < d <= cfg.max_dials_per_round for d in dials), dials


async def test_upgrades_we_start_are_budgeted_per_peer() -> None:
    """Each relayed connection a peer makes to us starts an upgrade, and the
    peer's CONNECT answer names the addresses we punch: a peer that dials
    in again and again gets the budget's upgrades, not one per connection."""
    cfg = PunchConfig(fresh_ports=False, round_window=0.3, upgrades_per_peer=2)  # no direct dial to loopback
    async with relay_and_hosts(2) as (relay, _server, (attacker, node)):
        relay_addr = f"{relay.listen_addrs()[0]}/p2p/{relay.peer_id}"
        started: list[int] = []  # the relayed connection each of our DCUtR streams came over

        async def count(stream) -> None:  # type: ignore[no-untyped-def]
            started.append(id(stream.net_stream.muxed_conn))
            await stream.reset()  # every round fails at once

        attacker.set_stream_handler(PROTOCOL_ID, count)
        async with (
            open_relay_client(node, [relay_addr]) as held,
            open_dcutr(node, cfg, rng=random.Random(1)) as dcutr,
            open_relay_client(attacker, []) as client,
        ):
            assert await held.wait_reserved(5)
            for _ in range(4):
                await client.dial_via_relay(node.peer_id, f"{relay_addr}/p2p-circuit/p2p/{node.peer_id}")
                with trio.fail_after(10):  # our upgrade attempt (if any) has begun and ended
                    await trio.sleep(1.0)
                    while dcutr.busy(attacker.peer_id):
                        await trio.sleep(0.05)
                await attacker.disconnect(node.peer_id)
                with trio.fail_after(5):
                    while node.is_connected(attacker.peer_id):
                        await trio.sleep(0.05)
    assert len(set(started)) == 2, started  # 4 relayed connections, 2 upgrades


async def test_a_peer_that_dialed_us_through_a_relay_gets_no_rounds_answered() -> None:
    """A hostile-peer review (stop 43): any peer with a relayed connection
    could start rounds, so a stranger dialing us through our own relay spent
    the whole answer budget (30 streams, reset at once) and nobody's upgrade
    was answered for the rest of the minute. Rounds come from the peer that
    accepted our relayed connection (the spec's B; go resets them on inbound
    connections too): the stranger's streams are reset before any budget is
    spent, and the peer we dialed is still answered."""
    cfg = PunchConfig(allow_loopback=True, fresh_ports=False, round_window=0.3, answer_per_peer=3, answer_per_minute=3)
    victim_addrs = tuple(encode_addr(f"/ip4/127.0.0.1/tcp/{p}") for p in _closed_ports(1))
    async with relay_and_hosts(3) as (relay, _server, (stranger, node, honest)):
        relay_addr = f"{relay.listen_addrs()[0]}/p2p/{relay.peer_id}"
        async with (
            open_relay_client(node, [relay_addr]) as held,
            open_relay_client(honest, [relay_addr]) as honest_held,
            open_dcutr(node, cfg, rng=random.Random(1)),
            open_relay_client(stranger, []) as stranger_client,
        ):
            assert await held.wait_reserved(5) and await honest_held.wait_reserved(5)
            await stranger_client.dial_via_relay(node.peer_id, f"{relay_addr}/p2p-circuit/p2p/{node.peer_id}")

            async def round_from(peer) -> bool:  # type: ignore[no-untyped-def]
                try:
                    stream = await peer.open_stream(node.peer_id, PROTOCOL_ID)
                    await stream.write(encode(HolePunch(MsgType.CONNECT, victim_addrs)))
                    reply = await read_message(stream.read)
                    await stream.write(encode(HolePunch(MsgType.SYNC)))
                except (HostError, WireError, EOFError):
                    return False
                return reply.type is MsgType.CONNECT

            for _ in range(6):  # twice the budget, one after the other
                assert not await round_from(stranger)
            await held.dial_via_relay(honest.peer_id, f"{relay_addr}/p2p-circuit/p2p/{honest.peer_id}")
            with trio.fail_after(5):
                while not honest.is_connected(node.peer_id):
                    await trio.sleep(0.02)
            assert await round_from(honest)  # the budget is whole
