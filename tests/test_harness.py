"""The peer-process harness: reading with timeouts, stopping by PID, reaping,
and the log tails a failing test's report carries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.harness import PeerExited, PeerProcess, PeerTimeout, Spawner

PY = sys.executable

ECHO = textwrap.dedent(
    """
    import json, sys
    print(json.dumps({"event": "ready"}), flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        print(json.dumps({"event": "echo", **msg}), flush=True)
    print(json.dumps({"event": "bye"}), flush=True)
    """
)


def test_json_events_send_and_clean_exit(spawn: Spawner) -> None:
    p = spawn([PY, "-c", ECHO], name="echo")
    assert p.wait_for("ready", 30) == [{"event": "ready"}]
    p.send({"n": 1})
    p.send({"n": 2})
    got = p.wait_for("echo", 10)
    assert got == [{"event": "echo", "n": 1}]
    assert p.json(10) == {"event": "echo", "n": 2}
    assert p.stop(grace=10) == 0
    assert p.readline(1) == '{"event": "bye"}' and p.readline(1) is None
    assert "to stderr" in p.stderr_tail()
    assert (p.stdout_path.read_text()).startswith('{"event": "ready"}')


def test_timeout_and_exit_are_reported(spawn: Spawner) -> None:
    p = spawn([PY, "-c", "import time; print('x', flush=True); time.sleep(60)"], name="slow")
    assert p.line(30) == "x"
    with pytest.raises(PeerTimeout):
        p.readline(0.2)
    assert p.events_until("never", 0.2) == []
    q = spawn([PY, "-c", "import sys; print('bad', file=sys.stderr)"], name="dies")
    with pytest.raises(PeerExited, match="bad"):
        q.json(30)


def test_stop_escalates_to_sigterm_then_sigkill(tmp_path: Path) -> None:
    ignores_stdin = PeerProcess([PY, "-c", "import time; print('up', flush=True); time.sleep(60)"], log_dir=tmp_path)
    ignores_stdin.line(30)
    assert ignores_stdin.stop(grace=0.2, term_wait=5) == -signal.SIGTERM
    stubborn = PeerProcess(
        [
            PY,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
            "time.sleep(60)",
        ],
        log_dir=tmp_path,
    )
    stubborn.line(30)
    assert stubborn.stop(grace=0.1, term_wait=0.3) == -signal.SIGKILL
    assert stubborn.poll() == -signal.SIGKILL  # reaped
    stubborn.stop()  # twice is fine


def test_failed_test_report_carries_log_tails(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    (tmp_path / "test_fails.py").write_text(
        textwrap.dedent(
            f"""
            def test_fails(spawn):
                p = spawn([{PY!r}, "-c", "import sys; print('MARK-OUT', flush=True); print('MARK-ERR', file=sys.stderr)"])
                assert p.line(30) == "MARK-OUT"
                p.wait(30)
                assert False
            """
        )
    )
    env = dict(os.environ, PYTHONPATH=str(root))
    cmd = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(tmp_path)]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "peer process logs (call)" in out.stdout and "MARK-ERR" in out.stdout and "MARK-OUT" in out.stdout
