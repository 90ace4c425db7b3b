"""A machine with no network says so (``node/online.py``).

Offline, ``get`` waited out its deadline and then said the *sharer* "may
have stopped sharing or be offline"; ``share`` printed a code naming only
127.0.0.1 without a word. Each command here runs in a network namespace
of its own with nothing but loopback (``unshare -n``), as a laptop off
Wi-Fi is; the same commands with the machine's network say nothing of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from p2pshare import sharecode
from p2pshare.node.online import OFFLINE, has_route
from tests.cli.helpers import run
from tests.harness import ALONE, ROOT, runs_alone

pytestmark = pytest.mark.skipif(not runs_alone("true"), reason="needs unshare -n (root or user namespaces)")


def _events(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _warnings(out: str) -> list[str]:
    return [str(e["message"]) for e in _events(out) if e.get("event") == "warning"]


def test_the_route_check_sees_a_namespace_without_network() -> None:
    probe = [sys.executable, "-c", "from p2pshare.node.online import has_route; print(has_route())"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([*ALONE, *probe], capture_output=True, text=True, timeout=30, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def _code_for(address: str) -> str:
    return sharecode.ShareCode(
        peer_id="12D3KooWJ1rPwKNWob9imNUTeQyVywCnPNtLS3NGfn4jp8si3KHL",
        addresses=(address,),
        encryption_key=os.urandom(32),
        share_code=sharecode.new_human_code(),
    ).encode()


def test_get_offline_says_this_machine_is_offline_not_the_sharer(tmp_path: Path) -> None:
    code = _code_for("/ip4/203.0.113.7/tcp/4001")
    started = time.monotonic()
    res = run(["get", code, "-o", str(tmp_path / "out"), "--timeout", "3", "--json"], tmp_path / "home", prefix=ALONE)
    took = time.monotonic() - started
    assert res.returncode == 3, res.stderr[-2000:]
    assert any(OFFLINE in w for w in _warnings(res.stdout)), res.stdout  # said at once, while it keeps trying
    errors = [e for e in _events(res.stdout) if e.get("event") == "error"]
    assert errors and str(errors[0]["message"]).startswith(OFFLINE), errors
    # The whole chain stays in the --json message, as for every chained failure.
    assert "what was tried: could not reach the sharer" in str(errors[0]["message"]), errors
    assert "stopped sharing" not in res.stderr  # the old line blamed the sharer
    assert took < 20, took
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not has_route(), reason="this machine itself has no route")
def test_get_with_a_network_does_not_say_offline(tmp_path: Path) -> None:
    code = _code_for("/ip4/127.0.0.1/tcp/1")  # nothing listens: unreachable, but not offline
    res = run(["get", code, "-o", str(tmp_path / "out"), "--timeout", "2", "--json"], tmp_path / "home")
    assert res.returncode == 3, res.stderr[-2000:]
    assert OFFLINE not in res.stdout + res.stderr


def test_share_offline_warns_that_the_code_cannot_be_reached_yet(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello\n")
    # SIGINT after 4 s: share stops as on Ctrl-C.
    prefix = ["timeout", "--preserve-status", "-s", "INT", "4", *ALONE]
    res = run(["share", str(src), "--json", "--no-mdns"], tmp_path / "home", prefix=prefix)
    assert res.returncode == 0, res.stderr[-2000:]
    shared = next(e for e in _events(res.stdout) if e.get("event") == "shared")
    assert all("/127.0.0.1/" in str(a) for a in shared["addresses"])  # type: ignore[union-attr]
    assert any(OFFLINE in w and "cannot reach it" in w for w in _warnings(res.stdout)), res.stdout
