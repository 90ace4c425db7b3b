"""The command line's log on stderr: plain lines for people, bounded in number.

Without ``-v`` a warning reads ``p2pshare: warning: <what happened>``, as the
CLI's own error lines do: the logger's module path and the level in capitals
meant something to us, not to the person running ``share``. ``-v`` keeps
both and adds the milliseconds since start-up.

At every verbosity, warnings and errors pass :class:`BudgetFilter`, so what
peers can make the process print is bounded (:mod:`.logbudget` says why and
how), and every message is one line of printable characters: a peer's text
in a message (an error it caused, a name it chose) cannot move the cursor,
recolour the terminal or forge a line of its own. Info lines (``-v``) have
a budget of their own, far larger (:func:`chatter_budget`): who asks for them
wants them, but a relay run with ``-v`` for months logs a line for each
RESERVE a peer sends, and a peer can send thousands a second; they never
take the warnings' budget. Debug lines (``-vv``, for a debugging session)
are not limited.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

from p2pshare.node.logbudget import LogBudget, limited_note, suppressed_note
from p2pshare.transfer.errors import sanitize_text

__all__ = ["BudgetFilter", "setup_logging"]

#: Characters of a message template that name its kind (bounds the table).
_KIND_CHARS = 160


def chatter_budget() -> LogBudget:
    """The info lines' budget: 30 of a kind at once, then one a second;
    300 of all kinds at once, then 20 a second (one peer refreshing its
    reservation made a relay log ~300 lines a second before:
    ``tests/relay/test_verbose_log.py``)."""
    return LogBudget(burst=30, interval=1.0, total_burst=300, total_interval=0.05)


class BudgetFilter(logging.Filter):
    """Drops warnings and info lines past their :class:`LogBudget`; marks the ones around a gap.

    Our own lines and the libraries' have a budget each: py-libp2p writes
    some warnings with the peer's ID in the text, so a peer can make as
    many kinds of them as it has IDs and spend their whole budget, and our
    lines (a full disk, a relay lost) must still be shown."""

    def __init__(
        self,
        budget: LogBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        libraries: LogBudget | None = None,
        chatter: LogBudget | None = None,
    ) -> None:
        super().__init__()
        self.budget = budget or LogBudget()
        self.libraries = libraries or LogBudget()
        self.chatter = chatter or chatter_budget()
        self._clock = clock

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return True
        ours = record.name == "p2pshare" or record.name.startswith("p2pshare.")
        if record.levelno < logging.WARNING:
            budget = self.chatter
        else:
            budget = self.budget if ours else self.libraries
        kind = (record.name, record.levelno, str(record.msg)[:_KIND_CHARS])
        verdict = budget.admit(kind, self._clock())
        if not verdict.show:
            return False
        note = ""
        if verdict.suppressed:
            note = suppressed_note(verdict.suppressed)
        elif verdict.limiting:
            note = limited_note(budget.interval)
        if note:
            try:
                text = record.getMessage()
            except Exception:  # noqa: BLE001 - a bad log call must not raise from here
                text = str(record.msg)
            record.msg, record.args = text + note, None
        return True


#: Characters of one message printed (a peer's text can be in a message).
MAX_LOG_CHARS = 1000


def one_line(text: str) -> str:
    """``text`` safe for one terminal line: control and other unprintable
    characters (escape sequences, carriage returns, newlines that would
    forge a line) become ``?``, as in every peer text we print
    (``transfer.errors.sanitize_text``); cut at ``MAX_LOG_CHARS``."""
    return sanitize_text(text, MAX_LOG_CHARS)


class _SafeFormatter(logging.Formatter):
    """The ``-v`` format: the message made one safe line, tracebacks kept."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = one_line(record.message)
        return super().formatMessage(record)


class _PlainFormatter(logging.Formatter):
    """Without ``-v``: ``p2pshare: warning: <message>`` on one line; an
    exception is named, not traced (``-v`` shows the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"p2pshare: {record.levelname.lower()}: {self.text(record)}"

    @staticmethod
    def text(record: logging.LogRecord) -> str:
        """The line without its ``p2pshare: warning:`` prefix (also the
        ``--json`` warning event's message)."""
        text = record.getMessage()
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            text += f" ({type(exc).__name__}: {exc})" if str(exc) else f" ({type(exc).__name__})"
        return one_line(text)


#: Warning events held until the command's first line is out, at most.
HELD_EVENTS = 64


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines on stderr; with ``--json``, each warning logged (a relay that
    refused us, the DHT out of reach) is also a ``warning`` event on stdout,
    as the reporter's own warnings are: a script reading the events saw only
    some of them. One handler, so one budget decides both. The events wait
    for the command's first line (``share``'s code, ``relay``'s addresses:
    scripts read it first): :func:`stdout_started` lets them out."""

    def __init__(self, json_out: TextIO | None) -> None:
        super().__init__(sys.stderr)
        self.json_out = json_out
        self.held: list[str] | None = []  # None once the first line is out

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if self.json_out is None or record.levelno < logging.WARNING:
            return
        text = _PlainFormatter.text(record)
        line = json.dumps({"event": "warning", "message": text}, separators=(",", ":")) + "\n"
        if self.held is None:
            self._out(line)
        elif len(self.held) < HELD_EVENTS:
            self.held.append(line)

    def let_out(self) -> None:
        """Write the held events; from now on each as it comes. (Not
        ``release``: that is ``logging.Handler``'s lock.)"""
        self.acquire()  # emit holds it too: a thread's warning waits for the held ones
        try:
            held, self.held = self.held, None
            for line in held or ():
                self._out(line)
        finally:
            self.release()

    def _out(self, line: str) -> None:
        assert self.json_out is not None
        try:
            self.json_out.write(line)
            self.json_out.flush()
        except (BrokenPipeError, ValueError):
            pass  # a reader that went away is not our error


_handler: _Handler | None = None


def stdout_started() -> None:
    """The command's first line is on stdout: logged warnings may follow it."""
    if _handler is not None:
        _handler.let_out()


def setup_logging(verbose: int, json_out: TextIO | None = None) -> None:
    """-v: our INFO; -vv: our DEBUG; -vvv: everyone's DEBUG.

    Dependencies stay at WARNING until -vvv: at -vv py-multiaddr alone
    printed 175 of 186 lines, and the lines that explain our decisions
    drowned. With -v each line carries the milliseconds since start-up
    (``t+4160ms``): where a slow first byte went is the first question a
    verbose log must answer (issue 10's latency budget)."""
    ours = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    global _handler
    handler = _handler = _Handler(json_out)
    if verbose:
        handler.setFormatter(_SafeFormatter("p2pshare: t+%(relativeCreated).0fms %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(_PlainFormatter())
    handler.addFilter(BudgetFilter())
    logging.basicConfig(level=logging.DEBUG if verbose >= 3 else logging.WARNING, handlers=[handler])
    logging.getLogger("p2pshare").setLevel(ours)
