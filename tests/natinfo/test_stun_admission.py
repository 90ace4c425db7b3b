"""The STUN responder holds a bounded number of connections.

It used to accept every connection and make it wait for a handling slot
with no deadline: 20,000 idle connections from one host took a real
``p2pshare relay`` to its descriptor limit (EMFILE for its libp2p listener,
its dials and its files). The pure ``node.slots`` and the
real responder in-process; ``tests/cli/test_relay_stun_flood.py`` floods a
real relay process.
"""

from __future__ import annotations

import socket

import trio

from p2pshare.node.natinfo import _trio_stun
from p2pshare.node.natinfo._trio_stun import observe, serve_stun_tcp
from p2pshare.node.natinfo.addrs import ip_group
from p2pshare.node.slots import Slots


def test_slots_bound_the_total_and_each_address_and_a_64_is_one() -> None:
    slots = Slots(total=5, per_key=2)
    assert [slots.take(ip_group("198.51.100.1")) for _ in range(3)] == [True, True, False]
    v6 = ["2001:db8:1:2::1", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::ffff"]  # one /64
    assert [slots.take(ip_group(ip)) for ip in v6] == [True, True, False]
    assert slots.take(ip_group("203.0.113.9"))
    assert not slots.take(ip_group("203.0.113.10"))  # five open: the total is reached
    slots.give_back(ip_group("198.51.100.1"))
    assert slots.take(ip_group("203.0.113.10")) and slots.in_use == 5


def _closed_by_peer(s: socket.socket) -> bool:
    try:
        return s.recv(1, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


async def test_one_host_cannot_hold_the_responder() -> None:
    per_ip = _trio_stun._MAX_CONNS_PER_IP
    async with trio.open_nursery() as nursery:
        [port] = await nursery.start(serve_stun_tcp, "127.0.0.1", [0])
        idle = []
        for _ in range(per_ip + 24):  # idle: never send a request
            s = socket.socket()
            s.connect(("127.0.0.1", port))
            idle.append(s)
        await trio.sleep(0.5)
        closed = [_closed_by_peer(s) for s in idle]
        assert closed.count(False) == per_ip and closed.count(True) == 24  # the rest: closed at once
        # Meanwhile a client from another address is answered.
        listener = trio.socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        await listener.bind(("127.0.0.2", 0))
        listener.listen(1)
        seen = await observe(listener.getsockname(), [("127.0.0.1", port)], timeout=3)
        assert [o.mapped for o in seen] == [listener.getsockname()]
        listener.close()
        for s in idle:
            s.close()
        nursery.cancel_scope.cancel()
