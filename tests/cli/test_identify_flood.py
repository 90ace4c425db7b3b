"""Identify pushes from many fresh identities do not grow a real relay.

py-libp2p 0.8.1 kept every protocol name of an identify/push of up to 1 MiB
in the peerstore, per identity (1,000 of them): measured on a real relay,
20 identities pushing 1 MB each grew it by 109 MB. Now a message over 64
KiB is ignored and a smaller one keeps at most 64 names
(``node/_libp2p_identify.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import Proc, rss_bytes, run_module, start

MB = 1 << 20


def test_identify_pushes_from_fresh_identities_leave_a_relay_small(tmp_path: Path, procs: list[Proc]) -> None:
    relay = start(["relay", "--json", "--listen", "/ip4/127.0.0.1/tcp/0"], tmp_path / "relay-home")
    procs.append(relay)
    first = next(relay.events(timeout=60))
    addr = next(a for a in first["addrs"] if a.startswith("/ip4/127.0.0.1/"))
    # Warm-up: the first identities' connections, handlers and parse buffers.
    warm = run_module("tests.hostile.identify_flood", addr, "3", "protocols", "60000", home=tmp_path / "f0")
    assert warm.returncode == 0, warm.stderr[-2000:]
    before = rss_bytes(relay.popen.pid)
    for kind, size in (("protocols", 1_000_000), ("protocols", 60_000), ("addrs", 60_000)):
        res = run_module("tests.hostile.identify_flood", addr, "15", kind, str(size), home=tmp_path / "f1")
        assert res.returncode == 0, res.stderr[-2000:]
        assert json.loads(res.stdout)["pushed"] == 15
    grown = rss_bytes(relay.popen.pid) - before
    # 45 identities; the old code kept ~5.4 MB for each 1 MB push alone (~80 MB here).
    assert grown < 25 * MB, f"relay grew by {grown / MB:.1f} MB"
    assert relay.popen.poll() is None
