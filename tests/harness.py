"""One harness for the peer subprocesses the tests start.

Every suite that runs a peer, relay, node or CLI in its own OS process uses
:class:`PeerProcess`: start (argv, env, cwd), read stdout lines or JSON
events with a timeout, wait for a given event, send JSON lines on stdin,
stop by PID (close stdin, then SIGTERM, then SIGKILL, each wait bounded) and
always reap. stdout and stderr are kept in log files; when a test fails, the
tail of every process that ran during it is attached to the pytest report
(the hook is in ``tests/conftest.py``).

Plain threads and pipes, no trio: session fixtures outlive one test and
cannot be async under pytest-trio. A reader thread queues stdout lines; the
``a``-prefixed methods are the same reads for trio tests (in a worker
thread, each bounded by its own timeout).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TAIL_CHARS = 4000
#: A command prefix: what follows runs in a network namespace of its own
#: with only loopback up, as on a machine without a network (root or user
#: namespaces needed; see :func:`runs_alone`).
ALONE = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def runs_alone(*cmd: str) -> bool:
    """Whether ``cmd`` succeeds under :data:`ALONE` here (tests that need it skip when not)."""
    try:
        return subprocess.run([*ALONE, *cmd], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class PeerTimeout(AssertionError):
    """No line (or not the awaited event) within the timeout; fails the test."""


class PeerExited(RuntimeError):
    """The process closed its stdout while a line was still expected."""


_counter = itertools.count(1)
_live: set[PeerProcess] = set()
_this_test: list[PeerProcess] = []
_default_dir: Path | None = None
_keep_logs = False


def _log_dir() -> Path:
    global _default_dir
    if _default_dir is None:
        _default_dir = Path(tempfile.mkdtemp(prefix="p2pshare-peers-"))
    return _default_dir


class PeerProcess:
    """One subprocess with its stdout read line by line, logs on disk."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | str = ROOT,
        log_dir: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.name = f"{name or Path(self.argv[0]).name}-{next(_counter)}"  # unique in a log dir
        log_dir = log_dir or _log_dir()
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = log_dir / f"{self.name}.stdout"
        self.stderr_path = log_dir / f"{self.name}.stderr"
        self._stderr = open(self.stderr_path, "ab")
        self._stdout_log = open(self.stdout_path, "ab")
        self.popen = subprocess.Popen(
            self.argv,
            cwd=str(cwd),
            env=dict(env) if env is not None else None,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.lines: list[str] = []  # every stdout line read so far, without "\n"
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._eof = False
        self._reader = threading.Thread(target=self._read, name=f"reader-{self.name}", daemon=True)
        self._reader.start()
        _live.add(self)
        _this_test.append(self)

    # -- reading -------------------------------------------------------------

    def _read(self) -> None:
        out: IO[bytes] | None = self.popen.stdout
        assert out is not None
        try:
            for raw in out:
                with contextlib.suppress(ValueError, OSError):
                    self._stdout_log.write(raw)
                    self._stdout_log.flush()
                self._queue.put(raw.decode(errors="replace").rstrip("\r\n"))
        except (ValueError, OSError):
            pass
        finally:
            self._queue.put(None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def readline(self, timeout: float = 30.0) -> str | None:
        """The next stdout line (without newline), None at EOF; raises
        :class:`PeerTimeout` (with the log tail) when none comes in time."""
        if self._eof:
            return None
        try:
            line = self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            raise PeerTimeout(f"{self.name}: no stdout line within {timeout}s\n{self.log_tail()}") from None
        if line is None:
            self._eof = True
            return None
        self.lines.append(line)
        return line

    def line(self, timeout: float = 30.0) -> str:
        """The next stdout line; :class:`PeerExited` at EOF."""
        text = self.readline(timeout)
        if text is None:
            code = self._reap(10.0)
            raise PeerExited(f"{self.name} {self.argv[1:]!r} exited ({code})\n{self.log_tail()}")
        return text

    def json(self, timeout: float = 30.0) -> Any:
        """The next stdout line as JSON."""
        return json.loads(self.line(timeout))

    def events(self, timeout: float = 60.0) -> Iterator[dict[str, Any]]:
        """JSON lines until EOF, each within ``timeout``."""
        while (text := self.readline(timeout)) is not None:
            yield json.loads(text)

    def wait_for(self, event: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Events read until (and including) the first whose ``event`` is
        ``event``; raises when the process ends or ``timeout`` passes first."""
        got: list[dict[str, Any]] = []
        end = time.monotonic() + timeout
        while True:
            msg = self.json(end - time.monotonic())
            got.append(msg)
            if msg.get("event") == event:
                return got

    def events_until(self, event: str, timeout: float) -> list[dict[str, Any]]:
        """Like :meth:`wait_for` but returns what was read on EOF or timeout."""
        got: list[dict[str, Any]] = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                text = self.readline(end - time.monotonic())
            except PeerTimeout:
                break
            if text is None:
                break
            got.append(json.loads(text))
            if got[-1].get("event") == event:
                break
        return got

    async def aline(self, timeout: float = 30.0) -> str:
        import trio

        return await trio.to_thread.run_sync(self.line, timeout)

    async def ajson(self, timeout: float = 30.0) -> Any:
        import trio

        return await trio.to_thread.run_sync(self.json, timeout)

    async def await_for(self, event: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        import trio

        return await trio.to_thread.run_sync(self.wait_for, event, timeout)

    # -- writing -------------------------------------------------------------

    def send(self, msg: object) -> None:
        """One line on stdin: ``msg`` as is when a str, else as JSON."""
        text = msg if isinstance(msg, str) else json.dumps(msg)
        assert self.popen.stdin is not None
        self.popen.stdin.write((text + "\n").encode())
        self.popen.stdin.flush()

    def close_stdin(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if self.popen.stdin is not None and not self.popen.stdin.closed:
                self.popen.stdin.close()

    # -- stopping ------------------------------------------------------------

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the PID if the process still runs."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for exit, then read what is left of stdout into ``lines``."""
        code = self.popen.wait(timeout)
        while self.readline(5) is not None:
            pass
        return code

    def _reap(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 10.0, term_wait: float = 5.0) -> int:
        """Close stdin and give the process ``grace`` seconds to leave; then
        SIGTERM and ``term_wait`` seconds; then SIGKILL. Always reaps and
        closes the logs; safe to call twice."""
        self.close_stdin()
        code = self._reap(grace) if grace > 0 else self.popen.poll()
        if code is None:
            self.kill(signal.SIGTERM)
            code = self._reap(term_wait)
        if code is None:
            self.kill(signal.SIGKILL)
            code = self.popen.wait()
        self._reader.join(timeout=5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        for f in (self._stderr, self._stdout_log):
            f.close()
        _live.discard(self)
        return code

    # -- logs ------------------------------------------------------------------

    def stderr_tail(self, n: int = TAIL_CHARS) -> str:
        with contextlib.suppress(ValueError):
            self._stderr.flush()
        try:
            return self.stderr_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def log_tail(self, n: int = TAIL_CHARS) -> str:
        try:
            out = self.stdout_path.read_text(errors="replace")[-n // 2 :]
        except OSError:
            out = "(no log)"
        return (
            f"--- {self.name} (pid {self.pid}, exit {self.popen.poll()}) stdout tail ---\n{out}\n"
            f"--- {self.name} stderr tail ---\n{self.stderr_tail(n)}"
        )


def stop_all(procs: Sequence[PeerProcess], grace: float = 15.0) -> None:
    """Close every stdin first, then stop each: the processes exit in parallel
    and the whole group takes at most ``grace`` seconds before signals."""
    for p in procs:
        p.close_stdin()
    end = time.monotonic() + grace
    for p in procs:
        p.stop(grace=max(0.1, end - time.monotonic()))


def python_module(module: str, *args: str, **kw: Any) -> PeerProcess:
    """``python -m module args...`` from the repository root."""
    return PeerProcess([PYTHON, "-m", module, *args], **kw)


# -- pytest integration (called from tests/conftest.py) ------------------------


def begin_test() -> None:
    """Forget the processes of the previous test (session ones stay live)."""
    _this_test.clear()


def failure_report() -> str:
    """Log tails of the processes that ran during the failed test."""
    global _keep_logs
    procs = list(dict.fromkeys([*_this_test, *_live]))
    if not procs:
        return ""
    _keep_logs = True
    return "\n".join(p.log_tail() for p in procs)


@atexit.register
def _cleanup() -> None:
    for p in list(_live):
        with contextlib.suppress(Exception):
            p.stop(grace=0, term_wait=2)
    if _default_dir is not None and not _keep_logs:
        shutil.rmtree(_default_dir, ignore_errors=True)


class Spawner:
    """What the ``spawn`` fixture gives a test: start processes whose logs go
    to one directory; :meth:`stop_all` (at teardown) stops every one."""

    def __init__(self, log_dir: Path, grace: float = 10.0) -> None:
        self.log_dir = log_dir
        self.grace = grace
        self.procs: list[PeerProcess] = []

    def __call__(self, argv: Sequence[str], **kw: Any) -> PeerProcess:
        kw.setdefault("log_dir", self.log_dir)
        p = PeerProcess(argv, **kw)
        self.procs.append(p)
        return p

    def module(self, module: str, *args: str, **kw: Any) -> PeerProcess:
        return self([PYTHON, "-m", module, *args], **kw)

    def stop_all(self) -> None:
        stop_all(self.procs, grace=self.grace)


def file_modes_bind() -> list[str]:
    """A command prefix under which file modes bind the command as they bind
    anyone: nothing for a normal user; for root (CI runs as root), util-linux's
    ``setpriv`` without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, the two
    capabilities through which root reads and writes any file. Permission
    tests then run instead of being skipped. Skips when neither is possible."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        import pytest

        pytest.skip("running as root, and no setpriv to drop root's file capabilities")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
