"""node/_gc.py: no collection while the command line starts, frozen after.

Unit checks run in subprocesses (``gc.freeze`` would move the test process's
own objects). The end-to-end tests run the real command line (``entry`` of
``p2pshare/__main__.py``), as a ``get`` from a real sharer and as a relay,
and watch the collector with ``gc.callbacks``: nothing collected before the
host listens, the start-up objects frozen and the collector on once it does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cli.helpers import ROOT, Proc, env_for

_UNIT = """
import gc
from p2pshare.node import _gc
assert gc.isenabled() and not _gc.is_paused()
_gc.settle()  # not paused: nothing happens
assert gc.isenabled() and gc.get_freeze_count() == 0
_gc.pause(); _gc.pause()
assert not gc.isenabled() and _gc.is_paused()
junk = [[i] for i in range(50_000)]
_gc.settle()
assert gc.isenabled() and not _gc.is_paused() and gc.get_freeze_count() > 50_000
frozen = gc.get_freeze_count()
_gc.settle()  # once only
assert gc.get_freeze_count() == frozen
gc.disable()  # someone else turned it off: pause leaves it to them
_gc.pause(); _gc.settle()
assert not gc.isenabled() and gc.get_freeze_count() == frozen
print("OK")
"""


def _python(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter; fail the test if it fails."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_pause_and_settle() -> None:
    assert _python(_UNIT).stdout.strip() == "OK"


def test_importing_the_modules_leaves_the_collector_alone() -> None:
    script = "import gc, p2pshare.node._gc, p2pshare.node.api, p2pshare.cli\nprint(gc.isenabled())\n"
    assert _python(script).stdout.strip() == "True"


_WATCH = """
import gc, json, sys
from p2pshare.node import _gc
collected = []  # collections while paused
gc.callbacks.append(lambda phase, info: phase == "stop" and _gc.is_paused() and collected.append(info["generation"]))
import p2pshare.__main__ as m  # pauses the collector before the command line's imports
assert _gc.is_paused()
settle = _gc.settle
def watched() -> None:
    before = list(collected)
    settle()
    print(json.dumps({"collected_before": before, "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}),
          file=sys.stderr, flush=True)
_gc.settle = watched
sys.argv = ["p2pshare", *sys.argv[1:]]
m.entry()
"""


def _assert_settled(report: dict[str, Any]) -> None:
    """``_WATCH``'s report: nothing collected while paused (~185 collections
    before this change), then the collector on and start-up frozen."""
    assert report["collected_before"] == [], report
    assert report["enabled"] and report["frozen"] > 20_000, report


def test_the_command_line_collects_nothing_while_starting(
    tmp_path: Path, sharer: Callable[..., tuple[Proc, dict[str, Any]]]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"hello\n" * 1000)
    _, shared = sharer(src / "a.txt")
    out = tmp_path / "out"
    home = tmp_path / "getter-home"
    args = ["get", "-y", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0", "-o", str(out), shared["code"]]
    proc = _python(_WATCH, *args, env=env_for(home))
    assert (out / "a.txt").read_bytes() == b"hello\n" * 1000
    _assert_settled(json.loads(next(line for line in proc.stderr.splitlines() if line.startswith("{"))))


def test_the_relay_collects_nothing_while_starting(tmp_path: Path) -> None:
    """``p2pshare relay`` runs for months: it settles once its host listens."""
    args = ["relay", "--json", "--listen", "/ip4/127.0.0.1/tcp/0"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _WATCH, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(tmp_path / "relay-home"),
        cwd=ROOT,
    )
    deadline = threading.Timer(60, proc.kill)  # no report in time: EOF ends the loop
    deadline.start()
    try:
        assert proc.stderr is not None
        line = ""
        for line in proc.stderr:  # the report is printed when start-up settles
            if line.startswith("{"):
                break
    finally:
        deadline.cancel()
        proc.terminate()
        proc.wait(timeout=30)
    assert line.startswith("{"), f"the relay never settled its start-up: {line!r}"
    _assert_settled(json.loads(line))
