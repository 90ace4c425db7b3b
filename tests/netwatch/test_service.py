"""The trio side of the address watch, through the real kernel: a network
namespace made for the test, addresses added and removed with ``ip``.

The in-process test runs trio with a clock that never moves: the fallback
look every ``FALLBACK_POLL`` seconds cannot fire, so a call can only come
from the kernel's message. The CLI test runs ``p2pshare node`` in the
namespace and reads its ``addresses`` events.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from p2pshare.node.netwatch import service
from p2pshare.node.netwatch.core import HEADER
from tests.cli.helpers import CLI, ROOT, Proc, env_for
from tests.netwatch.conftest import ip as _ip

_CLONE_NEWNET = 0x40000000


def _run_in(ns: str, fn: Any) -> Any:
    """Run ``fn()`` in a thread that joined ``ns`` (sockets it makes belong there)."""
    out: dict[str, Any] = {}

    def target() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                out["error"] = OSError(ctypes.get_errno(), "setns")
                return
        finally:
            os.close(fd)
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            out["error"] = exc

    t = threading.Thread(target=target, daemon=True)  # a hung wait fails the join below, not the run
    t.start()
    t.join(60)
    assert not t.is_alive(), "the namespace thread did not finish"
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_the_kernel_wakes_the_watch_with_the_clock_stopped(netns: str) -> None:
    async def main() -> list[str]:
        seen: list[str] = []
        changed = trio.Event()

        def on_change() -> None:
            seen.append("change")
            changed.set()

        async with trio.open_nursery() as nursery:
            assert await nursery.start(service.serve_address_watch, on_change) is True
            await trio.to_thread.run_sync(_ip, "-n", netns, "addr", "add", "100.64.7.1/32", "dev", "lo")
            await changed.wait()
            changed = trio.Event()
            await trio.to_thread.run_sync(_ip, "-n", netns, "addr", "del", "100.64.7.1/32", "dev", "lo")
            await changed.wait()
            nursery.cancel_scope.cancel()
        return seen

    # MockClock without autojump: trio.sleep(FALLBACK_POLL) never returns.
    seen = _run_in(netns, lambda: trio.run(main, clock=trio.testing.MockClock()))
    assert len(seen) >= 2


class _FakeSock:
    """recvmsg results in order; an exception instance is raised instead."""

    def __init__(self, results: list[Any]) -> None:
        self.results = results
        self.calls = 0

    def recvmsg(self, size: int) -> Any:
        self.calls += 1
        if not self.results:
            raise BlockingIOError
        r = self.results.pop(0)
        if isinstance(r, BaseException):
            raise r
        return r


def _dgram(kind: int, port: int = 0, flags: int = 0) -> tuple[bytes, list[Any], int, tuple[int, int]]:
    return HEADER.pack(HEADER.size, kind, 0, 0, 0), [], flags, (port, 0x10)


def test_drain_reads_until_empty_and_keeps_only_the_kernels_word() -> None:
    sock = _FakeSock([_dgram(24), _dgram(20, port=999)])
    assert service.drain(sock) is False  # type: ignore[arg-type]
    assert sock.calls == 3  # two datagrams, then "nothing more"
    assert service.drain(_FakeSock([_dgram(24), _dgram(21)])) is True  # type: ignore[arg-type]


def test_drain_counts_lost_messages_and_cut_datagrams_as_changes() -> None:
    nobufs = OSError(errno.ENOBUFS, "No buffer space available")
    assert service.drain(_FakeSock([nobufs])) is True  # type: ignore[arg-type]
    assert service.drain(_FakeSock([_dgram(24, flags=socket.MSG_TRUNC)])) is True  # type: ignore[arg-type]
    with pytest.raises(OSError):
        service.drain(_FakeSock([OSError(errno.EBADF, "bad")]))  # type: ignore[arg-type]


def test_drain_is_bounded_per_wakeup() -> None:
    sock = _FakeSock([_dgram(24)] * (service.MAX_PER_WAKEUP * 3))
    service.drain(sock)  # type: ignore[arg-type]
    assert sock.calls == service.MAX_PER_WAKEUP


def test_a_node_reports_an_address_gained_and_lost(netns: str, tmp_path: Path) -> None:
    """``p2pshare node`` listening on every interface, in the namespace: an
    address added to an interface appears in an ``addresses`` event, and
    leaves in the next one when it is removed (no relay, no DHT peers)."""
    home = tmp_path / "node"
    env = env_for(home) | {"P2PSHARE_NO_DEFAULT_BOOTSTRAP": "1"}
    argv = ["ip", "netns", "exec", netns, *CLI, "node", "--json", "--no-mdns", "--listen", "/ip4/0.0.0.0/tcp/0"]
    node = Proc(argv, name="p2pshare-node", env=env, cwd=ROOT, log_dir=tmp_path / "logs")
    try:
        first = node.wait_for("node", timeout=60)[-1]
        assert not any("/100.64.9.2/" in a for a in first["addrs"]), first
        _ip("-n", netns, "addr", "add", "100.64.9.2/32", "dev", "lo")
        gained = _next_addresses(node, lambda addrs: any(a.startswith("/ip4/100.64.9.2/tcp/") for a in addrs))
        _ip("-n", netns, "addr", "del", "100.64.9.2/32", "dev", "lo")
        lost = _next_addresses(node, lambda addrs: not any("/100.64.9.2/" in a for a in addrs))
        assert gained != lost
        node.kill(signal.SIGTERM)
        assert node.wait(20) == 0
    finally:
        node.close()


def _next_addresses(node: Proc, ok: Any) -> list[str]:
    seen = []
    for _ in range(20):
        ev = node.wait_for("addresses", timeout=30)[-1]
        seen.append(ev["addrs"])
        if ok(ev["addrs"]):
            return list(ev["addrs"])
    raise AssertionError(f"no matching addresses event: {seen}")


async def _calls_within(seconds: float) -> int:
    calls = []
    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            await nursery.start(service.serve_address_watch, lambda: calls.append(1))
    return len(calls)


def test_without_netlink_it_looks_every_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "open_route_socket", lambda: None)
    clock = trio.testing.MockClock(autojump_threshold=0)
    calls = trio.run(_calls_within, service.FALLBACK_POLL * 3.5, clock=clock)
    assert calls == 3


def test_a_failing_socket_falls_back_to_looking_and_the_node_lives_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """EBADF from the socket (say): logged, then the same looks as without
    netlink; the error does not reach the node's nursery."""
    a, b = socket.socketpair()
    b.send(b"x")  # readable at once

    def broken(sock: socket.socket) -> bool:
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(service, "open_route_socket", lambda: a)
    monkeypatch.setattr(service, "drain", broken)
    clock = trio.testing.MockClock(autojump_threshold=0)
    try:
        calls = trio.run(_calls_within, service.FALLBACK_POLL * 2.5, clock=clock)
    finally:
        b.close()
    assert calls == 2
    assert a.fileno() == -1  # closed on the way out
