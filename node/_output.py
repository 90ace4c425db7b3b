"""What the CLI prints: JSON lines for scripts, one-line messages and a
progress bar for people. Keys never pass through here unless asked for.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from typing import Any, TextIO

from p2pshare.node._stderr_log import one_line, stdout_started
from p2pshare.node.progress import FileCursor, RateMeter, ReceiverLine, format_bytes, render, render_receivers


class Reporter:
    """Routes events: ``--json`` gives one object per line on stdout; otherwise
    human lines go to stderr and only the result (e.g. the code) to stdout."""

    def __init__(self, json_mode: bool, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.json_mode = json_mode
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.bar = ProgressBar(self.err) if not json_mode and self.err.isatty() and self.out.isatty() else None
        self._last_progress: tuple[int, int] | None = None
        self._started = False  # a first event is out
        self._held: list[str] = []  # --json warnings that came before the first event
        self._asking: TextIO | None = None  # where a question waits for its answer

    def event(self, event: str, /, **fields: Any) -> None:
        if not self.json_mode:
            return
        line = json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n"
        if self._started:
            _write(self.out, line)
            return
        if event == "warning":  # never before the command's first event (README): held until it
            self._held.append(line)
            return
        self._started = True
        if event == "error":  # a command that fails first: its warnings, then the error, last
            stdout_started()
            self._flush_held()
            _write(self.out, line)
            return
        _write(self.out, line)
        stdout_started()  # logged warnings, held until now, follow the first line
        self._flush_held()

    def flush(self) -> None:
        """Write the held ``--json`` warnings now, logged ones too (the command ends with no other event)."""
        if self.json_mode and not self._started:
            stdout_started()
        self._flush_held()

    def _flush_held(self) -> None:
        for line in self._held:
            _write(self.out, line)
        self._held.clear()

    def say(self, line: str) -> None:
        """A human message (stderr), kept off the progress bar's line."""
        if self.json_mode:
            return
        if self.bar is not None:
            self.bar.clear()
        _write(self.err, line + "\n")

    def warning(self, message: str) -> None:
        """A warning: a ``warning`` event with ``--json``, else a line on stderr
        that reads like the logged ones (``p2pshare: warning: …``). Made one
        safe line first, as logged ones are: a warning naming a local file
        called ``esc\\x1b[31m…`` or ``new\\nline`` put its escape sequence on
        the terminal and split the line (found by a usability review)."""
        self.event("warning", message=message)  # JSON escapes it: a program gets the exact path
        self.say(f"p2pshare: warning: {one_line(message)}")

    def result(self, line: str) -> None:
        """The one stdout line a human invocation produces."""
        if self.bar is not None:
            self.bar.clear()
        if not self.json_mode:
            _write(self.out, line + "\n")

    def progress(self, done: int, total: int) -> None:
        """A ``progress`` event, only when the figures moved (the transfer's
        final report repeats its last one)."""
        if (done, total) == self._last_progress:
            return
        self._last_progress = (done, total)
        self.event("progress", bytes=done, total=total)
        if self.bar is not None:
            self.bar.update(done, total)

    def files(self, files: list[tuple[str, int]]) -> None:
        """The share's files (path, size): the bar names the large one being received."""
        if self.bar is not None:
            self.bar.cursor = FileCursor.of(files)

    def status(self, line: str) -> None:
        """What is happening now (searching, connecting): one line, replaced by the next.

        On a terminal it is drawn where the progress bar goes; elsewhere it
        is a plain line, so logs still show what ``get`` waited for."""
        if self.json_mode:
            return
        if self.bar is not None:
            self.bar.show(line)
        else:
            _write(self.err, line + "\n")

    def qr(self, text: str) -> None:
        """``text`` as a QR code on stderr, for a phone's camera; not with ``--json``.

        Half-block characters (two modules a character) keep a ~300-character
        code within about 35 lines of 70 columns."""
        if self.json_mode:
            return
        import io

        import segno

        buf = io.StringIO()
        segno.make(text, error="l").terminal(out=buf, compact=True, border=2)
        self.say(buf.getvalue().rstrip("\n"))

    def ask(self, prompt: str, on: TextIO | None = None) -> str | None:
        """Ask a person on stderr (or ``on``: the terminal, when stderr is not
        one), read one line from stdin (blocking: run it in a thread).

        None at end of input (Ctrl-D), which counts as no."""
        if self.bar is not None:
            self.bar.clear()
        where = on or self.err
        _write(where, prompt)
        self._asking = where  # until answered: a Ctrl-C meanwhile leaves the cursor after the prompt
        line = sys.stdin.readline()
        self._asking = None
        if not line:
            _write(where, "\n")  # Ctrl-D left the cursor after the prompt: the next line starts afresh
            return None
        return line

    def error(self, message: str, exit_code: int, human: str | None = None, **details: Any) -> None:
        """The one error line; ``details`` (the error's facts) go into the JSON event only.

        ``human``: a shorter line for stderr; the JSON event keeps ``message``."""
        if self.bar is not None:
            self.bar.clear()
        if self._asking is not None:  # a Ctrl-C at the question: "[y/N] ^C", then the error on its own line
            _write(self._asking, "\n")
            self._asking = None
        self.event("error", message=message, exit_code=exit_code, **details)
        _write(self.err, f"p2pshare: error: {one_line(human or message)}\n")  # it may quote a sharer's path


def _write(stream: TextIO, text: str) -> None:
    """Write and flush; a reader that went away (closed pipe) is not our error."""
    try:
        stream.write(text)
        stream.flush()
    except (BrokenPipeError, ValueError):
        pass


class ProgressBar:
    """One terminal line, redrawn at most 10 times a second and never wider
    than the terminal (:func:`p2pshare.node.progress.render`)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.meter = RateMeter()
        self.cursor: FileCursor | None = None
        self.last_draw = 0.0
        self.visible = False

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        self.meter.add(now, done)
        if now - self.last_draw < 0.1 and done < total:
            return
        self.last_draw = now
        current = self.cursor.at(done) if self.cursor is not None else None
        if current is not None:  # the sharer's name for it: one printable line
            current = (_printable(current[0]), current[1], current[2])
        line = render(done, total, self.meter.rate(), self.meter.eta(done, total), _columns(), current)
        self.show(line)

    def show(self, line: str) -> None:
        width = _columns()
        self.stream.write("\r" + line[: max(1, width - 1)] + "\x1b[K")
        self.stream.flush()
        self.visible = True

    def clear(self) -> None:
        if self.visible:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.visible = False


class SendingDisplay:
    """The sharer's status line: every receiver's progress and rate, redrawn
    as their progress events arrive (each about every half second)."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.active: dict[str, tuple[RateMeter, int, int]] = {}

    def update(self, peer: str, sent: int, total: int) -> None:
        meter = self.active.get(peer, (RateMeter(), 0, 0))[0]
        meter.add(time.monotonic(), sent)
        self.active[peer] = (meter, sent, total)
        self._draw()

    def remove(self, peer: str) -> None:
        if self.active.pop(peer, None) is not None and self.reporter.bar is not None:
            self.reporter.bar.clear()
            self._draw()

    def _draw(self) -> None:
        if self.reporter.bar is None or not self.active:
            return
        lines = [ReceiverLine(f"…{p[-8:]}", sent, total, m.rate()) for p, (m, sent, total) in self.active.items()]
        self.reporter.bar.show(render_receivers(lines, _columns()))


def _printable(name: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in name)


def _columns() -> int:
    """The terminal's width now (it may have been resized), 80 if unknown."""
    return shutil.get_terminal_size((80, 24)).columns


human_bytes = format_bytes
