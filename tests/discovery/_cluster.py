"""Test-side driver for node processes (``tests/discovery/_node.py``).

Plain threads and pipes, no trio: fixtures that outlive one test cannot be
async under pytest-trio. Each process gets a reader thread that queues its
stdout lines; ``call`` sends one request and waits (bounded) for its answer.
"""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


class NodeProc:
    def __init__(self, name: str, log_dir: Path, *args: str) -> None:
        self.name = name
        self.args = args
        self.stderr_path = log_dir / f"{name}.stderr"
        self._stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.discovery._node", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._pending: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        self.peer_id = ""
        self.addrs: list[str] = []

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(json.loads(line))
        self._lines.put(None)

    def _next(self, deadline: float) -> dict[str, Any]:
        try:
            msg = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"{self.name}: no answer in time") from None
        if msg is None:
            raise RuntimeError(f"{self.name} exited ({self.proc.wait()}): {self.stderr_tail()}")
        return msg

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        msg = self._next(time.monotonic() + timeout)
        assert msg.get("event") == "ready", msg
        self.peer_id = msg["peer_id"]
        self.addrs = msg["addrs"]

    @property
    def p2p_addr(self) -> str:
        return f"{self.addrs[0]}/p2p/{self.peer_id}"

    def send(self, cmd: str, **kw: Any) -> int:
        rid = next(self._ids)
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"id": rid, "cmd": cmd, **kw}) + "\n").encode())
        self.proc.stdin.flush()
        return rid

    def result(self, rid: int, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while rid not in self._pending:
            msg = self._next(deadline)
            self._pending[msg["id"]] = msg
        msg = self._pending.pop(rid)
        if not msg["ok"]:
            raise RuntimeError(f"{self.name}: {msg['error']}")
        return msg["result"]

    def call(self, cmd: str, *, wait: float = 30.0, **kw: Any) -> Any:
        """Send ``cmd`` and wait up to ``wait`` seconds for its result."""
        return self.result(self.send(cmd, **kw), wait)

    def stderr_tail(self, n: int = 2000) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-n:]

    def stop(self, timeout: float = 10.0) -> None:
        try:
            assert self.proc.stdin is not None
            if not self.proc.stdin.closed:
                self.proc.stdin.close()
            self.proc.wait(timeout=timeout)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        finally:
            self._stderr.close()


def stop_all(nodes: list[NodeProc], timeout: float = 15.0) -> None:
    """Close every stdin first, then wait: the processes exit in parallel."""
    for n in nodes:
        try:
            assert n.proc.stdin is not None
            n.proc.stdin.close()
        except Exception:
            pass
    deadline = time.monotonic() + timeout
    for n in nodes:
        n.stop(timeout=max(0.1, deadline - time.monotonic()))


def start_all(nodes: list[NodeProc]) -> list[NodeProc]:
    """Wait for nodes started together (each needs ~1 s to import libp2p)."""
    try:
        for n in nodes:
            n.wait_ready()
    except BaseException:
        stop_all(nodes, timeout=5)
        raise
    return nodes
