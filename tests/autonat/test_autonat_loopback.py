"""AutoNAT over loopback with real server processes (both roles are ours)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from p2pshare.node.autonat._trio_client import open_autonat, parse_servers
from p2pshare.node.autonat.client import AutoNATConfig, Outcome, Reachability
from p2pshare.node.autonat.wire import PROTOCOL_ID, Dial, DialResponse, ResponseStatus, encode_dial, read_message
from p2pshare.node.host import open_host
from p2pshare.node.identity import generate_identity
from p2pshare.node.natinfo.addrs import encode_addr
from tests.harness import PeerProcess, python_module, stop_all

FAST = AutoNATConfig(boot_delay=3600, retry_interval=3600, refresh_interval=3600, request_timeout=8)


class Server:
    def __init__(self, *args: str) -> None:
        self.proc: PeerProcess = python_module("tests.autonat._server_main", *args, name="autonat-server")
        self._info: dict[str, object] | None = None

    @property
    def addr(self) -> str:
        if self._info is None:
            self._info = self.proc.json(timeout=60)
        addrs = self._info["addrs"]
        assert isinstance(addrs, list)
        return f"{addrs[0]}/p2p/{self._info['peer']}"


@pytest.fixture(scope="module")
def servers() -> Iterator[list[Server]]:
    procs = [Server("--dial-private"), Server("--dial-private"), Server("--dial-private"), Server()]
    try:
        for p in procs:
            p.addr  # noqa: B018 - waits for the address line
        yield procs
    finally:
        stop_all([p.proc for p in procs])


async def test_reachable_node_is_public_confirmed(servers: list[Server]) -> None:
    async with open_host(generate_identity()) as host:
        async with open_autonat(host, [s.addr for s in servers[:3]], FAST) as autonat:
            v = await autonat.check_once()
            mine = set(host.listen_addrs())
    assert v.reachability is Reachability.PUBLIC and v.confirmed, autonat.last_results
    assert v.ok == 3 and v.addrs and set(v.addrs) <= mine


async def test_existing_connection_never_counts(servers: list[Server]) -> None:
    """Connected to every server, but the tested port has no listener: a server
    that reused the existing connection would say OK."""
    closed = trio.socket.socket()
    await closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    async with open_host(generate_identity()) as host:
        async with open_autonat(
            host, [s.addr for s in servers[:3]], FAST, addrs=lambda: [f"/ip4/127.0.0.1/tcp/{port}"]
        ) as autonat:
            v = await autonat.check_once()
            assert all(host.is_connected(p) for p in parse_servers([s.addr for s in servers[:3]]))
    assert v.reachability is Reachability.PRIVATE and v.confirmed, autonat.last_results
    assert {r.outcome for r in autonat.last_results} == {Outcome.DIAL_ERROR}


async def test_single_server_is_unconfirmed_and_watch_publishes(servers: list[Server]) -> None:
    async with open_host(generate_identity()) as host:
        cfg = AutoNATConfig(boot_delay=0, retry_interval=3600, refresh_interval=3600, request_timeout=8)
        async with open_autonat(host, [servers[0].addr], cfg) as autonat:
            seen = []
            with trio.fail_after(15):
                async for v in autonat.watch():
                    seen.append(v)
                    if v.reachability is not Reachability.UNKNOWN:
                        break
    assert seen[0].reachability is Reachability.UNKNOWN
    assert seen[-1].reachability is Reachability.PUBLIC and not seen[-1].confirmed


async def test_server_refuses_private_requesters(servers: list[Server]) -> None:
    async with open_host(generate_identity()) as host:
        async with open_autonat(host, [servers[3].addr], FAST) as autonat:
            v = await autonat.check_once()
    assert v.reachability is Reachability.UNKNOWN
    (r,) = autonat.last_results
    assert r.outcome is Outcome.REFUSED and "not public" in r.detail


async def test_dial_backs_to_decoy_peers_leave_no_connection(servers: list[Server]) -> None:
    """A requester names other peers' ports (on its own IP) as its own: the
    server's dial-backs reach them, find they are not the requester
    (E_DIAL_ERROR) and must close again. They used to stay in the server's
    swarm, outside its inbound limits (decoys: 16 ports a request)."""
    addr, server_id = servers[1].addr.rsplit("/p2p/", 1)
    async with (
        open_host(generate_identity()) as requester,
        open_host(generate_identity()) as decoy1,
        open_host(generate_identity()) as decoy2,
    ):
        await requester.connect(server_id, [addr], timeout=5)
        stream = await requester.open_stream(server_id, PROTOCOL_ID)
        decoys = tuple(encode_addr(h.listen_addrs()[0]) for h in (decoy1, decoy2))
        await stream.write(encode_dial(Dial(requester.peer_id_bytes, decoys)))
        with trio.fail_after(15):
            answer = await read_message(stream.read)
        assert isinstance(answer, DialResponse) and answer.status is ResponseStatus.E_DIAL_ERROR, answer
        await trio.sleep(1.0)
        assert not decoy1.is_connected(server_id) and not decoy2.is_connected(server_id)


async def test_a_full_server_table_replaces_a_found_server_that_left() -> None:
    """At ``MAX_SERVERS`` a newly found server used to be ignored for the
    node's whole life; now one that keeps failing makes room for it."""
    from p2pshare.node import _libp2p_records as records
    from p2pshare.node.autonat._trio_client import MAX_SERVERS
    from p2pshare.node.autonat.client import MISSES_TO_DROP, ServerResult

    def addr(i: int) -> tuple[str, str]:
        pid = records.peer_id_to_text(records.peer_id_of_key(generate_identity().public_key))
        return pid, f"/ip4/127.0.0.1/tcp/{20000 + i}/p2p/{pid}"

    async with open_host(generate_identity()) as host:
        async with open_autonat(host, [], FAST) as autonat:
            known = [addr(i) for i in range(MAX_SERVERS)]
            assert all(autonat.add_server(a) for _, a in known)
            newcomer_id, newcomer = addr(99)
            assert not autonat.add_server(newcomer)  # full, and none has failed
            gone = known[5][0]
            for i in range(MISSES_TO_DROP):
                autonat._tracker.complete_round([ServerResult(gone, Outcome.FAILED)], MAX_SERVERS, float(i))
            assert autonat.add_server(newcomer)
            assert newcomer_id in autonat._servers and gone not in autonat._servers
            assert len(autonat._servers) == MAX_SERVERS
