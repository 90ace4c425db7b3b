"""One host cannot hold every stream of a real relay through many peer IDs.

Each identity may hold 16 streams that never finish negotiating (10 s
each), and all peers together 128: 8 identities from one host held the
whole budget, so no one else could open a stream at all (the relay refused
even a ping). Streams are now also counted per address of their
connection: one address holds at most ``transient_stream_source.streams``
negotiating and ``stream_source.streams`` in all. Loopback is this machine
and not counted, so the flood comes from this machine's own non-loopback
address, and the probe over loopback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2pshare.node.rcmgr import DEFAULT_LIMITS
from tests.cli.helpers import Proc, own_address, run_module, start

OWN = own_address()


@pytest.mark.skipif(OWN is None, reason="needs a non-loopback address of this machine")
def test_many_identities_from_one_address_cannot_take_every_stream(tmp_path: Path, procs: list[Proc]) -> None:
    relay = start(["relay", "--json", "--listen", "/ip4/0.0.0.0/tcp/0"], tmp_path / "relay-home")
    procs.append(relay)
    first = next(relay.events(timeout=60))
    port = next(a for a in first["addrs"] if a.startswith("/ip4/127.0.0.1/")).split("/")[4]
    target = f"/ip4/{OWN}/tcp/{port}/p2p/{first['peer_id']}"
    probe = f"/ip4/127.0.0.1/tcp/{port}/p2p/{first['peer_id']}"
    hosts, per = 10, 16  # 160 negotiating streams: more than all 128 transient slots
    assert hosts * per > DEFAULT_LIMITS.transient.streams
    res = run_module("tests.hostile.stream_flood", target, probe, str(hosts), str(per), home=tmp_path / "flooder")
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert report["opened"] == hosts * per
    assert report["held"] <= DEFAULT_LIMITS.transient_stream_source.streams, report  # the old code held 128
    assert report["probe_ok"], report  # the old code refused it: "transient: streams limit reached"
    assert relay.popen.poll() is None
