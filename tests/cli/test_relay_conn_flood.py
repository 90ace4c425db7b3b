"""One host cannot hold every connection of a real relay through many peer IDs.

Peer IDs cost nothing to make, and the resource manager counted an
authenticated connection only against its peer (8) and the system (1,024):
one host with 128 fresh identities could hold all of a community relay's
connections. Now one address holds at most ``established_source.conns``
(loopback is this machine and not counted, so the flood comes from this
machine's own non-loopback address).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2pshare.node.rcmgr import DEFAULT_LIMITS
from tests.cli.helpers import Proc, own_address, run_module, start

OWN = own_address()


@pytest.mark.skipif(OWN is None, reason="needs a non-loopback address of this machine")
def test_many_identities_from_one_address_hold_a_bounded_number_of_connections(
    tmp_path: Path, procs: list[Proc]
) -> None:
    relay = start(["relay", "--json", "--listen", "/ip4/0.0.0.0/tcp/0"], tmp_path / "relay-home")
    procs.append(relay)
    first = next(relay.events(timeout=60))
    port = next(a for a in first["addrs"] if a.startswith("/ip4/127.0.0.1/")).split("/")[4]
    target = f"/ip4/{OWN}/tcp/{port}/p2p/{first['peer_id']}"
    cap = DEFAULT_LIMITS.established_source.conns
    res = run_module("tests.hostile.conn_flood", target, "10", "8", "0", home=tmp_path / "flooder")
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert report["dialled"] == 80
    assert report["alive"] <= cap, report  # the old code kept all 80
    assert relay.popen.poll() is None
