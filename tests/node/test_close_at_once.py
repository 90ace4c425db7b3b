"""The façade closes a host's connections concurrently (``close_connections_at_once``).

py-libp2p's ``Swarm.close`` closes them one at a time, each with ~0.2 s of
sleeps, so a ``get`` that met six peers exited 1.6 s after its last byte.
Fakes with the same per-close sleep on trio's virtual clock: all close, in
the time of one, and one that fails does not keep the others open. The
real path is every test that leaves ``open_host``.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from p2pshare.node import _libp2p_impl


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
