"""Drive the real ``p2pshare`` CLI in separate processes on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "p2pshare"]
ROOT = Path(__file__).resolve().parents[2]


def env_for(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["P2PSHARE_HOME"] = str(home)
    env["PYTHONPATH"] = str(ROOT)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    """A running CLI process whose stdout is read line by line with deadlines."""

    popen: subprocess.Popen[bytes]
    lines: list[str] = field(default_factory=list)
    _buf: bytes = b""

    def readline(self, timeout: float = 30.0) -> str | None:
        """Next stdout line, or None at EOF; fails the test on timeout."""
        deadline = time.monotonic() + timeout
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no stdout line within {timeout}s; stderr: {self.stderr_tail()}")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            data = os.read(fd, 65536)
            if not data:
                if self._buf:
                    line, self._buf = self._buf.decode(), b""
                    self.lines.append(line)
                    return line
                return None
            self._buf += data
        raw, self._buf = self._buf.split(b"\n", 1)
        line = raw.decode()
        self.lines.append(line)
        return line

    def events(self, timeout: float = 60.0) -> Iterator[dict[str, Any]]:
        while True:
            line = self.readline(timeout)
            if line is None:
                return
            yield json.loads(line)

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for exit, then read what is left of stdout into ``lines``."""
        code = self.popen.wait(timeout)
        while self.readline(5) is not None:
            pass
        return code

    def stderr_tail(self) -> str:
        if self.popen.poll() is None or self.popen.stderr is None:
            return "<still running>"
        return self.popen.stderr.read().decode(errors="replace")[-2000:]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)
        for f in (self.popen.stdout, self.popen.stderr):
            if f is not None:
                f.close()


def _loopback_only(args: list[str]) -> list[str]:
    """Test nodes listen on loopback only: left to the default (0.0.0.0) a
    receiver would advertise this machine's own interface address, and peers
    would dial it. Tests keep their traffic on loopback."""
    sub = next((a for a in args if not a.startswith("-")), "")
    if sub in ("get", "node") and "--listen" not in args:
        return [*args, "--listen", "/ip4/127.0.0.1/tcp/0"]
    return args


def start(args: list[str], home: Path) -> Proc:
    args = _loopback_only(args)
    popen = subprocess.Popen(
        CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(home), cwd=str(ROOT)
    )
    return Proc(popen)


def run(args: list[str], home: Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    args = _loopback_only(args)
    return subprocess.run(CLI + args, capture_output=True, text=True, env=env_for(home), cwd=str(ROOT), timeout=timeout)


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 (files) or 'dir' (directories), skipping our partial dir."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".p2pshare-partial"]
        rel = Path(dirpath).relative_to(root)
        for d in dirnames:
            out[str(rel / d)] = "dir"
        for f in filenames:
            h = hashlib.sha256((Path(dirpath) / f).read_bytes()).hexdigest()
            out[str(rel / f)] = h
    return out


def write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
