"""`p2pshare node`: a long-lived peer that reports its addresses as they change."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.cli.helpers import Proc, start
from tests.cli.test_relayed import start_relay


def test_node_reports_relayed_address_and_stops_cleanly(tmp_path: Path, procs: list[Proc]) -> None:
    relay = start_relay(tmp_path, procs, "--autonat-dial-private")
    node = start(["node", "--json", "--listen", "/ip4/127.0.0.1/tcp/0", "--relay", relay], tmp_path / "node")
    procs.append(node)
    events = node.events(timeout=30)
    first = next(events)
    assert first["event"] == "node" and first["peer_id"].startswith("12D3KooW")
    assert first["addrs"] and all("0.0.0.0" not in a for a in first["addrs"])
    seen = [first]
    for ev in events:
        seen.append(ev)
        addrs = ev.get("addrs", [])
        if ev["event"] in ("node", "addresses") and any("/p2p-circuit/" in a for a in addrs):
            break
    else:
        raise AssertionError(f"no relayed address reported: {seen}")
    node.kill(signal.SIGTERM)
    assert node.wait(20) == 0
    assert node.lines[-1].endswith('"stopped"}')


async def test_a_node_answers_autonat_requests(tmp_path: Path, procs: list[Proc]) -> None:
    """Every long-lived node serves AutoNAT for others. On loopback the spec's
    protection applies (a requester seen from a private address is not dialled
    back), so the answer is a refusal — which proves the server is there and
    answers with the protocol, rather than resetting an unknown protocol."""
    import json

    from p2pshare.node.autonat._trio_client import open_autonat
    from p2pshare.node.autonat.client import AutoNATConfig, Outcome
    from p2pshare.node.host import open_host
    from p2pshare.node.identity import generate_identity

    node = start(["node", "--json", "--listen", "/ip4/127.0.0.1/tcp/0"], tmp_path / "node")
    procs.append(node)
    first = json.loads(node.readline(30) or "{}")
    server = f"{first['addrs'][0]}/p2p/{first['peer_id']}"
    cfg = AutoNATConfig(boot_delay=0, retry_interval=600, refresh_interval=600, servers_per_round=1, agree=1)
    async with open_host(generate_identity()) as host:
        async with open_autonat(host, [server], cfg) as autonat:
            await autonat.check_once()
            results = autonat.last_results
    assert results and results[0].outcome == Outcome.REFUSED, results


def test_node_says_its_whole_address_and_nothing_after_the_stop(tmp_path: Path, procs: list[Proc]) -> None:
    """A usability review: the first line (peer ID, then bare addresses) was
    refused as it is by --bootstrap and --relay, nothing said the node was
    running, and a stray "addresses:" line came just before "Node stopped."."""
    import time

    node = start(["node", "--listen", "/ip4/127.0.0.1/tcp/0"], tmp_path / "node")
    procs.append(node)
    peer, addr = node.line(timeout=60).split()[:2]
    deadline = time.monotonic() + 30
    while "Node running" not in node.stderr_tail() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"Node running (Ctrl-C stops it); its address for other peers: {addr}/p2p/{peer}" in node.stderr_tail()
    node.kill(signal.SIGINT)
    assert node.wait(20) == 0
    assert not [line for line in node.lines[1:] if line.startswith("addresses:")], node.lines
    assert node.stderr_tail().rstrip().endswith("Node stopped.")
