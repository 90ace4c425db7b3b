"""Birthday probing's socket races on loopback (no NAT): which socket each side keeps.

The NAT behaviour itself is only in the NAT lab (tests/natlab/test_symmetric_birthday.py);
here: the hard side keeps the first socket that connects, and the easy side keeps
the one on which the peer speaks, not one the peer closed.
"""

from __future__ import annotations

import socket as stdlib_socket

import trio

from p2pshare.node.dcutr._trio_birthday import hold_probes, open_mappings
from p2pshare.node.dcutr.birthday import BirthdayConfig
from p2pshare.node.natinfo.addrs import TcpAddr


async def _listener(ip: str) -> tuple[trio.socket.SocketType, int]:
    lst = trio.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
    await lst.bind((ip, 0))
    lst.listen(64)
    return lst, int(lst.getsockname()[1])


async def _free_port(ip: str) -> int:
    """A port nothing listens on (bound then closed): connecting to it is refused."""
    s = trio.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
    await s.bind((ip, 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


async def test_easy_side_keeps_the_socket_the_peer_speaks_on() -> None:
    silent, silent_port = await _listener("127.0.0.1")
    speaker, speaker_port = await _listener("127.0.0.1")
    closed = await _free_port("127.0.0.1")
    sent = trio.Event()
    got: list[trio.socket.SocketType | None] = []
    async with trio.open_nursery() as nursery:

        async def close_at_once() -> None:  # like the hard side's losing sockets
            for _ in range(2):
                conn, _addr = await silent.accept()
                conn.close()

        async def speak() -> None:  # like the hard side's winner: multistream first
            conn, _addr = await speaker.accept()
            await trio.sleep(0.2)  # after the silent one has been closed
            await conn.send(b"/multistream/1.0.0\n")
            await trio.sleep(2)
            conn.close()

        nursery.start_soon(close_at_once)
        nursery.start_soon(speak)
        ports = [closed, silent_port, speaker_port]
        got.append(await hold_probes(("127.0.0.1", 0), "127.0.0.1", ports, trio.current_time() + 5, sent))
        nursery.cancel_scope.cancel()
    sock = got[0]
    assert sent.is_set()
    assert sock is not None and sock.getpeername()[1] == speaker_port
    assert await sock.recv(64) == b"/multistream/1.0.0\n"  # peeked, not consumed
    sock.close()
    silent.close()
    speaker.close()


async def test_easy_side_gives_up_at_the_deadline_when_nobody_speaks() -> None:
    closed = await _free_port("127.0.0.1")
    sent = trio.Event()
    start = trio.current_time()
    sock = await hold_probes(("127.0.0.1", 0), "127.0.0.1", [closed], start + 0.5, sent)
    assert sock is None and sent.is_set()
    assert trio.current_time() - start < 2


async def test_hard_side_keeps_the_first_connection_and_bounds_its_dials() -> None:
    lst, port = await _listener("127.0.0.1")
    cfg = BirthdayConfig(hard_sockets=8, hard_dials=16)
    got = await open_mappings(TcpAddr("127.0.0.1", port), cfg, trio.current_time() + 5)
    assert got is not None
    sock, dials = got
    assert 1 <= dials <= cfg.hard_dials
    assert sock.getpeername()[1] == port
    sock.close()
    lst.close()


async def test_hard_side_replaces_refused_dials_up_to_its_budget() -> None:
    closed = await _free_port("127.0.0.1")
    cfg = BirthdayConfig(hard_sockets=4, hard_dials=10)
    start = trio.current_time()
    assert await open_mappings(TcpAddr("127.0.0.1", closed), cfg, start + 5) is None
    assert trio.current_time() - start < 4  # every dial refused, the budget spent: no waiting out the window
