"""The façade closes a host's connections concurrently (``close_connections_at_once``).

py-libp2p's ``Swarm.close`` closes them one at a time, each with ~0.2 s of
sleeps, so a ``get`` that met six peers exited 1.6 s after its last byte.
Fakes with the same per-close sleep on trio's virtual clock: all close, in
the time of one, and one that fails does not keep the others open; one
whose polite close blocks is cut. The real path is every test that leaves
``open_host`` (and ``tests/cli/test_share_stop.py``, a frozen receiver).
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import pytest
import trio
import trio.testing

from p2pshare.node import _libp2p_close, _libp2p_impl


class _Conn:
    def __init__(self, name: str, closed: list[str], fail: bool = False) -> None:
        self.name, self.closed, self.fail = name, closed, fail

    async def close(self) -> None:
        await trio.sleep(0.2)  # upstream's reset grace + notify
        if self.fail:
            raise RuntimeError("already broken")
        self.closed.append(self.name)


class _Host:
    def __init__(self, connections: dict[str, list[Any]]) -> None:
        self.connections = connections

    def get_network(self) -> Any:
        return self


async def test_all_connections_close_in_the_time_of_one(autojump_clock: trio.testing.MockClock) -> None:
    closed: list[str] = []
    conns = {f"peer{i}": [_Conn(f"c{i}", closed)] for i in range(6)}
    conns["peer0"].append(_Conn("c0b", closed, fail=True))
    conns["peer1"].append(_Conn("c1b", closed))
    start = trio.current_time()
    await _libp2p_impl.close_connections_at_once(_Host(conns))  # type: ignore[arg-type]
    assert sorted(closed) == sorted([f"c{i}" for i in range(6)] + ["c1b"])
    assert trio.current_time() - start == pytest.approx(0.2)


async def test_a_host_without_a_swarm_is_left_alone() -> None:
    class Broken:
        def get_network(self) -> Any:
            raise RuntimeError("no swarm")

    await _libp2p_impl.close_connections_at_once(Broken())  # type: ignore[arg-type]


class _Layer:
    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


class _Stuck:
    """A swarm connection whose close blocks (its GO_AWAY behind data the
    peer does not read) until its socket is closed, and, like py-libp2p's
    ``SwarmConn.close``, runs once only: a second call returns at once."""

    def __init__(self, sock: trio.SocketStream) -> None:
        tcp = _Layer(stream=sock)
        self.muxed_conn = _Layer(secured_conn=_Layer(conn=_Layer(conn=_Layer(stream=tcp))))
        self.sock, self.closes, self.finished = sock, 0, False

    async def close(self) -> None:
        self.closes += 1
        if self.closes > 1:
            return
        try:
            await self.sock.wait_send_all_might_not_block()  # never, while the peer reads nothing
        except trio.ClosedResourceError:
            pass  # the socket was closed under it
        self.finished = True  # the rest of the close: swarm, streams, the disconnect notice


async def test_a_connection_that_does_not_close_politely_is_cut(autojump_clock: trio.testing.MockClock) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    with contextlib.suppress(BlockingIOError):  # fill the send buffer: the peer reads nothing
        while True:
            a.send(b"x" * 65536)
    sock = trio.SocketStream(trio.socket.from_stdlib_socket(a))
    conn = _Stuck(sock)
    start = trio.current_time()
    await _libp2p_close.close_swarm_conn(conn)
    assert trio.current_time() - start == pytest.approx(_libp2p_close.POLITE_CLOSE_S)
    assert conn.closes == 1 and conn.finished  # one close, finished, not cancelled half way
    assert sock.socket.fileno() == -1
    b.close()


async def test_a_connection_that_closes_in_time_keeps_its_socket_to_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = socket.socketpair()
    sock = trio.SocketStream(trio.socket.from_stdlib_socket(a))
    closes: list[str] = []
    conn = _Conn("quick", closes)
    conn.muxed_conn = _Layer(secured_conn=_Layer(conn=_Layer(conn=_Layer(stream=_Layer(stream=sock)))))  # type: ignore[attr-defined]
    await _libp2p_close.close_swarm_conn(conn)
    assert closes == ["quick"] and sock.socket.fileno() != -1  # closed politely (0.2 s): no cut
    await sock.aclose()
    b.close()


async def test_the_tcp_socket_is_found_under_a_real_connection() -> None:
    """Fingerprint of the layering ``tcp_socket_stream`` walks (py-libp2p 0.8.1)."""
    from p2pshare.node.host import open_host
    from p2pshare.node.identity import generate_identity

    async with open_host(generate_identity()) as a, open_host(generate_identity()) as b:
        await a.connect_unknown(b.listen_addrs()[0], timeout=10)
        network = a.libp2p.get_network()
        conns = [c for cs in network.connections.values() for c in cs]
        assert conns and all(isinstance(_libp2p_close.tcp_socket_stream(c), trio.SocketStream) for c in conns)
