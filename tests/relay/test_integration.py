"""Relay processes, a reserving peer process, and a dialer in the test process."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair

from p2pshare.node.circuit.client import RelayError, open_relay_client
from p2pshare.node.host import open_host

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class Proc:
    def __init__(self, *args: str) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-m", *args], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def line(self) -> str:
        assert self.p.stdout is not None
        text = self.p.stdout.readline()
        if not text:
            raise RuntimeError(f"{self.p.args!r} died (exit {self.p.wait()})")
        return text

    def json(self) -> Any:
        return json.loads(self.line())

    async def ajson(self, timeout: float = 15) -> Any:
        with trio.fail_after(timeout):
            return await trio.to_thread.run_sync(self.json)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                assert self.p.stdin is not None
                self.p.stdin.close()
                self.p.wait(timeout=10)
            except Exception:
                self.p.kill()
                self.p.wait()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.stop()


def relay_proc(tmp_path: Path, name: str, *flags: str) -> Proc:
    return Proc(
        "tests.relay._relay_main",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--identity",
        str(tmp_path / f"{name}.key"),
        *flags,
    )


async def test_cli_first_line_and_sigterm(tmp_path: Path) -> None:
    r = relay_proc(tmp_path, "r")
    try:
        first = (await trio.to_thread.run_sync(r.line)).split()
        assert first[0].startswith("12D3Koo") and len(first) >= 2
        assert all(a.endswith(f"/p2p/{first[0]}") for a in first[1:])
    finally:
        r.p.send_signal(signal.SIGTERM)
        assert r.p.wait(timeout=10) == 0


async def test_circuit_carries_a_large_payload(tmp_path: Path, procs: list[Proc]) -> None:
    r = relay_proc(tmp_path, "r", "--json")
    procs.append(r)
    relay_addr = (await r.ajson())["addrs"][0]
    target = Proc("tests.relay._peer", relay_addr)
    procs.append(target)
    info = await target.ajson()
    assert info["relayed"] and info["relayed"][0].startswith(relay_addr + "/p2p-circuit/p2p/")
    payload = os.urandom(1 << 20) * 24
    async with open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"]) as host:
        async with open_relay_client(host, []) as client:
            await client.dial_via_relay(info["peer"], info["relayed"][0])
            assert client.is_relayed(info["peer"]) and host.connection_path(info["peer"]) == "relayed"
            with trio.fail_after(30):
                s = await host.open_stream(info["peer"], "/t/sha")
                await s.write(payload)
                await s.close_write()
                reply = await s.read(200)
    assert reply.decode() == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"


async def test_refresh_and_failover_to_a_second_relay(tmp_path: Path, procs: list[Proc]) -> None:
    r1 = relay_proc(tmp_path, "r1", "--json", "--reservation-ttl", "2")
    r2 = relay_proc(tmp_path, "r2", "--json")
    procs += [r1, r2]
    a1 = (await r1.ajson())["addrs"][0]
    a2 = (await r2.ajson())["addrs"][0]
    target = Proc("tests.relay._peer", a1, a2, "--want", "1")
    procs.append(target)
    first = await target.ajson()
    assert [a.split("/p2p-circuit")[0] for a in first["relayed"]] == [a1]
    await trio.sleep(2.5)  # TTL 2 s: the client must have refreshed to still hold it
    async with open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"]) as host:
        async with open_relay_client(host, []) as client:
            await client.dial_via_relay(first["peer"], first["relayed"][0])
            await host.disconnect(first["peer"])
            r1.p.kill()  # the relay goes away
            r1.p.wait()
            lost = await target.ajson()  # reservation gone
            assert lost["relayed"] == []
            moved = await target.ajson()
            assert [a.split("/p2p-circuit")[0] for a in moved["relayed"]] == [a2]
            with pytest.raises(RelayError):
                await client.dial_via_relay(first["peer"], first["relayed"][0], timeout=3)
            await client.dial_via_relay(first["peer"], moved["relayed"][0])
            s = await host.open_stream(first["peer"], "/t/sha")
            await s.write(b"after failover")
            await s.close_write()
            assert (await s.read(200)).startswith(b"14 ")
