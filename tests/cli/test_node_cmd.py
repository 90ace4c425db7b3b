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
