"""The product runner's plumbing, driven with the FAKE product (plain sockets).

The fake has no NAT traversal, so cells whose sharer is behind a NAT must be
reported as failures: that proves failures are recorded, not just successes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import FAKE_CMD, leftovers, natlab

pytestmark = pytest.mark.natlab


def test_run_one_scenario_writes_results_and_logs(prefix: str, tmp_path: Path) -> None:
    r = natlab(
        "run",
        "public",
        "cone",
        "--p2pshare",
        FAKE_CMD,
        "--out",
        str(tmp_path),
        "--size",
        "300k",
        "--prefix",
        prefix,
        timeout=90,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == "1 passed, 0 failed"
    cell = tmp_path / "cells" / "public__cone"
    res = json.loads((cell / "result.json").read_text())
    topo = json.loads((cell / "topology.json").read_text())
    assert res["connected"] and res["verified"] and res["path"] == "direct"
    assert res["exit_code"] == 0 and res["size"] == 300 * 1024 and res["sharer_exit"] is None
    assert 0 < res["connect_s"] <= res["ttfb_s"] <= res["total_s"]
    assert res["throughput_mib_s"] > 0
    shared = json.loads((cell / "share.out").read_text().splitlines()[0])
    assert shared["event"] == "shared"
    # The relay was started on the relay host and its address handed to the sharer.
    relay_ip = topo["hosts"]["relay"]["ip"]
    assert res["relay"] and shared["relay"] == f"/ip4/{relay_ip}/tcp/4001/p2p/fakerelay"
    assert json.loads((cell / "relay.out").read_text())["peer_id"] == "fakerelay"
    events = [json.loads(x)["event"] for x in (cell / "get.out").read_text().splitlines()]
    assert events[0] == "connected" and events[-1] == "done"
    assert "ip netns exec" in (cell / "get.cmd").read_text()
    assert topo["prefix"] == prefix and topo["hosts"]["rcv"]["public_ip"].startswith("203.")
    assert leftovers(prefix) == []


def test_matrix_records_passes_and_failures(prefix: str, tmp_path: Path) -> None:
    r = natlab(
        "matrix",
        "--profiles",
        "public,cone,same-lan",
        "--p2pshare",
        FAKE_CMD,
        "--out",
        str(tmp_path),
        "--size",
        "64k",
        "--prefix",
        prefix,
        "--relay",
        "off",
        timeout=150,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == "3 passed, 2 failed"
    summary = json.loads((tmp_path / "matrix.json").read_text())
    verdict = {(c["sharer"], c["receiver"]): c["passed"] for c in summary["cells"]}
    assert verdict == {
        ("public", "public"): True,
        ("public", "cone"): True,
        ("cone", "public"): False,
        ("cone", "cone"): False,
        ("same-lan", "same-lan"): True,
    }
    failed = next(c for c in summary["cells"] if c["sharer"] == "cone")
    assert not failed["connected"] and failed["exit_code"] == 3 and failed["reasons"]
    md = (tmp_path / "matrix.md").read_text()
    assert "| cone | cone | punch | no |" in md and md.strip().endswith("3 passed, 2 failed")
    for s, rcv in verdict:
        cell = tmp_path / "cells" / f"{s}__{rcv}"
        assert {"share.out", "share.err", "get.out", "get.err", "result.json"} <= {p.name for p in cell.iterdir()}
    # A failing scenario is torn down like a passing one.
    assert leftovers(prefix) == []


def test_missing_product_is_one_clear_line(lab_ok: None, tmp_path: Path) -> None:
    r = natlab("run", "public", "cone", "--p2pshare", str(tmp_path / "no-such-p2pshare"))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "p2pshare not found" in r.stderr
    r = natlab("matrix", "--p2pshare", str(tmp_path / "nope"))
    assert r.returncode == 2 and "p2pshare not found" in r.stderr


@pytest.mark.parametrize(
    "args,msg",
    [
        (["run", "same-lan", "cone"], "same-lan pairs only with itself"),
        (["probe", "--prefix", "bad"], "bad prefix"),
        (["matrix", "--profiles", "cone,nope"], "unknown profile 'nope'"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], msg: str) -> None:
    r = natlab(*args)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr
