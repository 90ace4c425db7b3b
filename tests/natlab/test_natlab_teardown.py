"""Teardown on every exit path, refusing to run without root, and parallel runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from natlab_lib import netns

from .conftest import FAKE_CMD, NATLAB, fresh_prefix, leftovers, natlab

pytestmark = pytest.mark.natlab


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for(cond: object, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _start_up(prefix: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(NATLAB), "up", "--profiles", "cone,double", "--for", "60", "--prefix", prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded: `up` prints "ready" or exits
    assert json.loads(line)["prefix"] == prefix
    return proc


def test_sigint_mid_scenario_kills_processes_and_tears_down(prefix: str, tmp_path: Path) -> None:
    pidfile = tmp_path / "sharer.pid"
    env = dict(os.environ, FAKE_P2PSHARE_STALL="30", FAKE_P2PSHARE_PIDFILE=str(pidfile))
    # Started the way a shell starts a background job: SIGINT ignored on entry.
    proc = subprocess.Popen(
        [
            sys.executable,
            str(NATLAB),
            "run",
            "cone",
            "public",
            "--p2pshare",
            FAKE_CMD,
            "--out",
            str(tmp_path / "out"),
            "--prefix",
            prefix,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert _wait_for(pidfile.exists, 20), "the sharer never started"
        sharer = int(pidfile.read_text())
        assert leftovers(prefix) and _alive(sharer)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert leftovers(prefix) == []
    assert _wait_for(lambda: not _alive(sharer), 5)


def test_sigterm_tears_down(prefix: str) -> None:
    proc = _start_up(prefix)
    try:
        assert any(n.startswith(prefix + "-dblc") for n in leftovers(prefix))
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert leftovers(prefix) == []


def test_cleanup_removes_a_killed_run_but_not_a_live_one(prefix: str) -> None:
    proc = _start_up(prefix)
    try:
        assert natlab("cleanup").returncode == 0
        assert leftovers(prefix), "cleanup removed a run whose owner is alive"
        proc.kill()  # SIGKILL: no teardown can run
        proc.communicate(timeout=10)
        assert leftovers(prefix)
        r = natlab("cleanup")
        assert r.returncode == 0 and "removed" in r.stdout
    finally:
        proc.kill()
    assert leftovers(prefix) == []


def test_refuses_without_root_in_one_line() -> None:
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    argv = [python, str(NATLAB), "probe"]
    if os.geteuid() == 0:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 2
    assert r.stderr.strip() == "natlab: needs root (network namespaces and nftables); run it as root"


def test_two_runs_in_parallel_do_not_collide(lab_ok: None) -> None:
    prefixes = [fresh_prefix(), fresh_prefix()]
    if prefixes[0] == prefixes[1]:
        prefixes[1] = fresh_prefix()
    # One with the venv's python, one with the system python3 (stdlib only).
    pythons = [sys.executable, "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable]
    try:
        with ThreadPoolExecutor(2) as pool:
            runs = list(
                pool.map(
                    lambda i: natlab(
                        "probe",
                        "--profiles",
                        "cone,symmetric,cone-rst",
                        "--prefix",
                        prefixes[i],
                        python=pythons[i],
                        timeout=120,
                    ),
                    range(2),
                )
            )
    finally:
        leaks = [leftovers(p) for p in prefixes]
        for p in prefixes:
            netns.delete_prefix(p)
    assert leaks == [[], []]
    for r in runs:
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.strip().splitlines()[-1] == "3 passed, 0 failed"
