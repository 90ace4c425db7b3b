"""The command line's log on stderr: plain lines for people, bounded in number.

Without ``-v`` a warning reads ``p2pshare: warning: <what happened>``, as the
CLI's own error lines do: the logger's module path and the level in capitals
meant something to us, not to the person running ``share``. ``-v`` keeps
both and adds the milliseconds since start-up.

At every verbosity, warnings and errors pass :class:`BudgetFilter`, so what
peers can make the process print is bounded (:mod:`.logbudget` says why and
how). Info and debug lines, which only ``-v`` shows, are not limited: who
asks for them wants them all.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from p2pshare.node.logbudget import LogBudget, limited_note, suppressed_note

__all__ = ["BudgetFilter", "setup_logging"]

#: Characters of a message template that name its kind (bounds the table).
_KIND_CHARS = 160


class BudgetFilter(logging.Filter):
    """Drops warnings past their :class:`LogBudget`; marks the ones around a gap."""

    def __init__(self, budget: LogBudget | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.budget = budget or LogBudget()
        self._clock = clock

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        kind = (record.name, record.levelno, str(record.msg)[:_KIND_CHARS])
        verdict = self.budget.admit(kind, self._clock())
        if not verdict.show:
            return False
        note = ""
        if verdict.suppressed:
            note = suppressed_note(verdict.suppressed)
        elif verdict.limiting:
            note = limited_note(self.budget.interval)
        if note:
            record.msg, record.args = record.getMessage() + note, None
        return True


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"p2pshare: {record.levelname.lower()}: {super().format(record)}"


def setup_logging(verbose: int) -> None:
    """-v: our INFO; -vv: our DEBUG; -vvv: everyone's DEBUG.

    Dependencies stay at WARNING until -vvv: at -vv py-multiaddr alone
    printed 175 of 186 lines, and the lines that explain our decisions
    drowned. With -v each line carries the milliseconds since start-up
    (``t+4160ms``): where a slow first byte went is the first question a
    verbose log must answer (issue 10's latency budget)."""
    ours = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    if verbose:
        handler.setFormatter(
            logging.Formatter("p2pshare: t+%(relativeCreated).0fms %(levelname)s %(name)s: %(message)s")
        )
    else:
        handler.setFormatter(_PlainFormatter("%(message)s"))
    handler.addFilter(BudgetFilter())
    logging.basicConfig(level=logging.DEBUG if verbose >= 3 else logging.WARNING, handlers=[handler])
    logging.getLogger("p2pshare").setLevel(ours)
