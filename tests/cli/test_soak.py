"""``scripts/soak`` in short: the script the 15-minute soak of issue 9 runs.

The long run is done by hand (its figures are in the CHANGELOG); this keeps
the script itself working: a 20 s soak must complete real transfers both
ways, see no failure, leave both servers alive to the end, and clean up its
processes and temporary files, also when stopped by a signal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import ROOT

pytestmark = pytest.mark.slow
SOAK = ROOT / "scripts" / "soak"


def _env(tmp_path: Path) -> dict[str, str]:
    # TMPDIR: the soak's work directory lands here, so the test can see it go.
    return dict(os.environ, TMPDIR=str(tmp_path), P2PSHARE_NO_DEFAULT_BOOTSTRAP="1")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _assert_cleaned_up(tmp_path: Path, result: dict[str, Any]) -> None:
    assert not list(tmp_path.glob("p2pshare-soak-*")), "the work directory must be removed"
    for role, proc in result["processes"].items():
        if "pid" in proc:
            assert _gone(proc["pid"]), f"{role} still running"


def test_short_soak_transfers_and_keeps_servers_alive(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(SOAK), "--duration", "20", "--seed", "7", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(tmp_path),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.splitlines()[-1])
    assert r["ok"] and r["servers_ok"] and not r["servers_died"], r
    t = r["transfers"]
    assert t["completed"] > 0 and t["failed"] == 0, t
    assert t["paths"].get("direct", 0) >= 1 and t["paths"].get("relayed", 0) >= 1, t
    assert r["circuits"]["ok"] > 0 and r["circuits"]["failed"] == 0, r["circuits"]
    for role in ("relay", "sharer"):
        assert r["connections"][role]["ok"] > 0 and r["connections"][role]["failed"] == 0, r["connections"]
        assert r["held_at_once"][role]["failed"] == 0, r["held_at_once"]  # churn.concurrent's API drifted once
        p = r["processes"][role]
        assert p["alive_at_end"] and p["exit"] == 0, p
        assert len(p["rss_series_mib"]) >= 3 and p["rss_mib"]["peak"] >= p["rss_mib"]["start"] > 0, p
        assert p["fds"]["end"] > 0
    assert sum(r["abuse"].values()) > 0
    assert r["verdict"].startswith("flat: end RSS within 10% of the 1-minute RSS: ")
    _assert_cleaned_up(tmp_path, r)


def test_soak_stopped_by_sigterm_cleans_up(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [str(SOAK), "--duration", "600", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
    )
    try:
        time.sleep(8)  # servers up (or starting): both phases must clean up
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=45)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, stderr[-3000:]
    r = json.loads(stdout.splitlines()[-1])
    assert r["interrupted"] and not r["ok"]
    _assert_cleaned_up(tmp_path, r)
