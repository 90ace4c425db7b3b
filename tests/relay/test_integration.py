"""Relay processes, a reserving peer process, and a dialer in the test process."""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair

from p2pshare.node.circuit.client import RelayError, open_relay_client
from p2pshare.node.host import open_host
from tests.harness import PeerProcess, python_module, stop_all

pytestmark = pytest.mark.slow


def proc(*args: str) -> PeerProcess:
    """``python -m ARGS``; stopped with SIGTERM (the relay's clean exit)."""
    return python_module(*args, name=args[0].rsplit(".", 1)[-1])


@pytest.fixture
def procs() -> Iterator[list[PeerProcess]]:
    started: list[PeerProcess] = []
    yield started
    stop_all(started, grace=0)


def relay_proc(tmp_path: Path, name: str, *flags: str) -> PeerProcess:
    return proc(
        "tests.relay._relay_main",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--identity",
        str(tmp_path / f"{name}.key"),
        *flags,
    )


async def test_cli_first_line_and_sigterm(tmp_path: Path, procs: list[PeerProcess]) -> None:
    r = relay_proc(tmp_path, "r")
    procs.append(r)
    try:
        first = (await r.aline()).split()
        assert first[0].startswith("12D3Koo") and len(first) >= 2
        assert all(a.endswith(f"/p2p/{first[0]}") for a in first[1:])
    finally:
        r.kill(signal.SIGTERM)
        assert r.wait(timeout=10) == 0


async def test_circuit_carries_a_large_payload(tmp_path: Path, procs: list[PeerProcess]) -> None:
    r = relay_proc(tmp_path, "r", "--json")
    procs.append(r)
    relay_addr = (await r.ajson())["addrs"][0]
    target = proc("tests.relay._peer", relay_addr)
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


async def test_refresh_and_failover_to_a_second_relay(tmp_path: Path, procs: list[PeerProcess]) -> None:
    r1 = relay_proc(tmp_path, "r1", "--json", "--reservation-ttl", "2")
    r2 = relay_proc(tmp_path, "r2", "--json")
    procs += [r1, r2]
    a1 = (await r1.ajson())["addrs"][0]
    a2 = (await r2.ajson())["addrs"][0]
    target = proc("tests.relay._peer", a1, a2, "--want", "1")
    procs.append(target)
    first = await target.ajson()
    assert [a.split("/p2p-circuit")[0] for a in first["relayed"]] == [a1]
    await trio.sleep(2.5)  # TTL 2 s: the client must have refreshed to still hold it
    async with open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"]) as host:
        async with open_relay_client(host, []) as client:
            await client.dial_via_relay(first["peer"], first["relayed"][0])
            await host.disconnect(first["peer"])
            r1.kill()  # the relay goes away
            r1.wait()
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


async def test_reserving_on_a_node_that_is_no_relay_says_so() -> None:
    """Lazily negotiated, the node's "na" raced the reset that followed it
    (it took our RESERVE for its next protocol name): 8 of 11 tries read
    "stream ... broke: ... StreamReset". The reservation waits for the answer."""
    async with open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"]) as plain:
        addr = f"{plain.listen_addrs()[0]}/p2p/{plain.peer_id}"
        async with open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"]) as host:
            async with open_relay_client(host, []) as client:
                for _ in range(5):
                    with trio.fail_after(10), pytest.raises(RelayError) as refused:
                        await client.reserve(addr, timeout=5)
                    assert str(refused.value) == (
                        f"the node at {plain.listen_addrs()[0]} is not a relay (it refused circuit relay v2)"
                    )
