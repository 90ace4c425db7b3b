"""What the CLI prints: JSON lines for scripts, one-line messages and a
progress bar for people. Keys never pass through here unless asked for.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Reporter:
    """Routes events: ``--json`` gives one object per line on stdout; otherwise
    human lines go to stderr and only the result (e.g. the code) to stdout."""

    def __init__(self, json_mode: bool, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.json_mode = json_mode
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.bar = ProgressBar(self.err) if not json_mode and self.err.isatty() and self.out.isatty() else None

    def event(self, event: str, /, **fields: Any) -> None:
        if self.json_mode:
            _write(self.out, json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n")

    def say(self, line: str) -> None:
        """A human message (stderr), kept off the progress bar's line."""
        if self.json_mode:
            return
        if self.bar is not None:
            self.bar.clear()
        _write(self.err, line + "\n")

    def warning(self, message: str) -> None:
        """A warning: a ``warning`` event with ``--json``, else a line on stderr."""
        self.event("warning", message=message)
        self.say(f"warning: {message}")

    def result(self, line: str) -> None:
        """The one stdout line a human invocation produces."""
        if self.bar is not None:
            self.bar.clear()
        if not self.json_mode:
            _write(self.out, line + "\n")

    def progress(self, done: int, total: int) -> None:
        self.event("progress", bytes=done, total=total)
        if self.bar is not None:
            self.bar.update(done, total)

    def error(self, message: str, exit_code: int, **details: Any) -> None:
        """The one error line; ``details`` (the error's facts) go into the JSON event only."""
        if self.bar is not None:
            self.bar.clear()
        self.event("error", message=message, exit_code=exit_code, **details)
        _write(self.err, f"p2pshare: error: {message}\n")


def _write(stream: TextIO, text: str) -> None:
    """Write and flush; a reader that went away (closed pipe) is not our error."""
    try:
        stream.write(text)
        stream.flush()
    except (BrokenPipeError, ValueError):
        pass


class ProgressBar:
    """bytes, rate, ETA on one terminal line, redrawn at most 10 times a second."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.start = time.monotonic()
        self.first_done: int | None = None
        self.last_draw = 0.0
        self.visible = False

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.first_done is None:
            self.first_done, self.start = done, now
        if now - self.last_draw < 0.1 and done < total:
            return
        self.last_draw = now
        elapsed = max(now - self.start, 1e-6)
        rate = (done - self.first_done) / elapsed
        frac = done / total if total else 1.0
        width = 24
        filled = int(frac * width)
        eta = (total - done) / rate if rate > 0 else 0.0
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {frac * 100:5.1f}% "
            f"{_human_bytes(done)}/{_human_bytes(total)} {_human_bytes(rate)}/s ETA {eta:4.0f}s"
        )
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self.visible = True

    def clear(self) -> None:
        if self.visible:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.visible = False


human_bytes = _human_bytes
