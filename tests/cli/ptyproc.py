"""Run the real CLI on a pseudo-terminal: what a person at a terminal sees.

The consent prompt is asked only when standard input is a terminal, and the
progress bar is drawn only when stdout and stderr are; pipes (what the other
CLI tests use) exercise neither. The window size is set with TIOCSWINSZ
before the child starts, so ``shutil.get_terminal_size`` in the child reads
it. Reads are bounded by a deadline that fails the test (a hang), never by
timing assertions.
"""

from __future__ import annotations

import codecs
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

from tests.cli.helpers import CLI, ROOT, _loopback_only, env_for

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class PtyProc:
    """A CLI process whose stdin, stdout and stderr are one pseudo-terminal."""

    def __init__(
        self, args: list[str], home: Path, columns: int = 80, rows: int = 24, stderr_to: Path | None = None
    ) -> None:
        """``stderr_to``: standard error into that file instead (``2>log``); the
        pseudo-terminal is then the child's controlling terminal (``/dev/tty``),
        as a shell's is."""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = env_for(home)
        env.pop("COLUMNS", None)  # the window size, not an inherited override
        env.pop("LINES", None)
        env["TERM"] = "xterm"
        err = open(stderr_to, "wb") if stderr_to is not None else None  # noqa: SIM115 - closed below
        self.proc = subprocess.Popen(
            CLI + _loopback_only(args),
            stdin=slave,
            stdout=slave,
            stderr=err if err is not None else slave,
            env=env,
            cwd=ROOT,
            close_fds=True,
            start_new_session=err is not None,
            preexec_fn=(lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0)) if err is not None else None,  # noqa: PLW1509
        )
        if err is not None:
            err.close()  # the child holds its own
        os.close(slave)
        self.master = master
        self.output = ""
        # Reads can split a multi-byte character (the QR code's blocks, "…").
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def read_until(self, text: str, timeout: float = 60.0) -> str:
        """Read until ``text`` appeared (or the child ended); fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} did not appear; output so far:\n{self.output}")
            if not self._read_some(left):
                break
        return self.output

    def _read_some(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], min(timeout, 1.0))
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        self.output += self._decoder.decode(data)
        return True

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, timeout: float = 120.0) -> int:
        """Drain the terminal until the child exits; its exit code."""
        deadline = time.monotonic() + timeout
        while self._read_some(max(0.1, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"the CLI did not exit; output:\n{self.output}")
        return self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def screen_lines(output: str) -> list[str]:
    """What each terminal line last showed: ``\\r`` redraws keep the last segment.

    A redraw that is wider than the terminal would wrap; :func:`segments`
    exposes every drawn segment for that check."""
    return [ANSI.sub("", line.split("\r")[-1]) for line in output.replace("\r\n", "\n").split("\n")]


def segments(output: str) -> list[str]:
    """Every piece of text drawn between line starts (``\\r`` or ``\\n``), escapes removed."""
    return [ANSI.sub("", s) for s in re.split(r"[\r\n]", output)]


def redraws(output: str) -> list[str]:
    """The segments that were drawn and then overwritten in place (``\r``): the
    progress and status lines. Lines ended by ``\n`` are permanent and may
    wrap like any long message; a redrawn one must not, or it adds a line."""
    out: list[str] = []
    for line in output.replace("\r\n", "\n").split("\n"):
        parts = line.split("\r")
        out.extend(ANSI.sub("", p) for p in parts[:-1])
    return [p for p in out if p]
