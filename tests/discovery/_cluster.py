"""Test-side driver for node processes (``tests/discovery/_node.py``).

Processes run under the shared harness (tests/harness.py); this adds the
request/answer protocol: ``call`` sends one request and waits (bounded) for
its answer, keeping answers to other requests for later.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from tests import harness
from tests.harness import PeerProcess, PeerTimeout

START_TIMEOUT = 60.0


class NodeProc:
    def __init__(self, name: str, log_dir: Path, *args: str) -> None:
        self.name = name
        self.args = args
        self.proc: PeerProcess = harness.python_module("tests.discovery._node", *args, name=name, log_dir=log_dir)
        self._pending: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.peer_id = ""
        self.addrs: list[str] = []

    def _next(self, deadline: float) -> dict[str, Any]:
        try:
            msg: dict[str, Any] = self.proc.json(max(0.01, deadline - time.monotonic()))
        except PeerTimeout:
            raise TimeoutError(f"{self.name}: no answer in time") from None
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
        self.proc.send({"id": rid, "cmd": cmd, **kw})
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
        return self.proc.stderr_tail(n)

    def stop(self, timeout: float = 10.0) -> None:
        self.proc.stop(grace=timeout)


def stop_all(nodes: list[NodeProc], timeout: float = 15.0) -> None:
    """Close every stdin first, then wait: the processes exit in parallel."""
    harness.stop_all([n.proc for n in nodes], grace=timeout)


def start_all(nodes: list[NodeProc]) -> list[NodeProc]:
    """Wait for nodes started together (each needs ~1 s to import libp2p)."""
    try:
        for n in nodes:
            n.wait_ready()
    except BaseException:
        stop_all(nodes, timeout=5)
        raise
    return nodes
