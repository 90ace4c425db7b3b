"""Long-lived processes keep accepting connections (issue 9, finding 1).

py-libp2p 0.8.1 held each inbound connection's slot until the process
stopped: after 256 in a lifetime, closed or not, ``share``, ``node`` and
``relay`` refused every new connection and a real ``get`` exited 3.
``scripts/churn.py`` is the hostile-but-legal peer, in its own process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import ROOT, Proc, run, start, write_random

pytestmark = pytest.mark.slow
CHURN = 300  # more than the swarm's 256 inbound slots


def _churn(peer_id: str, addr: str, n: int) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "churn.py"), peer_id, addr, "--sequential", str(n), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_sharer_serves_after_more_connections_than_slots(
    tmp_path: Path, sharer: Callable[..., tuple[Proc, dict[str, Any]]]
) -> None:
    write_random(tmp_path / "f.bin", 300_000)
    _, shared = sharer(tmp_path / "f.bin")
    addr = next(a for a in shared["addresses"] if a.startswith("/ip4/127.0.0.1/"))
    got = _churn(shared["peer_id"], addr, CHURN)
    assert got["sequential_ok"] == CHURN, got
    res = run(["get", shared["code"], "-o", str(tmp_path / "out"), "--timeout", "30"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "f.bin").read_bytes() == (tmp_path / "f.bin").read_bytes()


def test_relay_accepts_after_more_connections_than_slots(tmp_path: Path, procs: list[Proc]) -> None:
    relay = start(["relay", "--listen", "/ip4/127.0.0.1/tcp/0", "--json"], tmp_path / "relay-home")
    procs.append(relay)
    first = next(relay.events(timeout=60))
    assert first["event"] == "relay", first
    addr = next(a for a in first["addrs"] if a.startswith("/ip4/127.0.0.1/"))
    got = _churn(first["peer_id"], addr.split("/p2p/")[0], CHURN + 20)
    assert got["sequential_ok"] == CHURN + 20, got
