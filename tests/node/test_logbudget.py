"""The warning budget's decisions, with fake time (pure core: ``node.logbudget``)."""

from __future__ import annotations

import io
import logging

import pytest

from p2pshare.node._stderr_log import BudgetFilter
from p2pshare.node.logbudget import HIDE, Admit, LogBudget, limited_note, suppressed_note


def shown(budget: LogBudget, kind: str, now: float, n: int) -> list[Admit]:
    return [v for v in (budget.admit(kind, now) for _ in range(n)) if v.show]


def test_a_burst_then_one_line_that_says_the_kind_is_limited() -> None:
    b = LogBudget(burst=5, interval=60)
    verdicts = [b.admit("k", 0.0) for _ in range(1000)]
    assert verdicts[:5] == [Admit(True)] * 5
    assert verdicts[5] == Admit(True, limiting=True)
    assert verdicts[6:] == [HIDE] * 994


def test_the_next_line_shown_counts_those_that_were_not() -> None:
    b = LogBudget(burst=5, interval=60)
    shown(b, "k", 0.0, 6 + 10)  # burst, the "limited" line, 10 hidden
    assert b.admit("k", 59.0) == HIDE  # no token yet: 11 hidden
    assert b.admit("k", 60.0) == Admit(True, suppressed=11)
    assert b.admit("k", 61.0) == HIDE  # still limited: one a minute
    assert b.admit("k", 120.0) == Admit(True, suppressed=1)


def test_a_quiet_kind_gets_its_whole_burst_back_and_may_say_limited_again() -> None:
    b = LogBudget(burst=3, interval=10)
    assert len(shown(b, "k", 0.0, 10)) == 4
    later = [b.admit("k", 30.0) for _ in range(5)]  # 3 tokens back: a new episode
    assert later[0] == Admit(True, suppressed=6)
    assert later[1:3] == [Admit(True)] * 2
    assert later[3] == Admit(True, limiting=True)
    assert later[4] == HIDE


def test_kinds_are_limited_apart() -> None:
    b = LogBudget(burst=2, interval=60)
    assert len(shown(b, "a", 0.0, 50)) == 3
    assert len(shown(b, "b", 0.0, 50)) == 3


def test_all_kinds_together_are_bounded() -> None:
    b = LogBudget(burst=5, interval=60, total_burst=20, total_interval=1.0, max_kinds=10_000)
    at_once = sum(len(shown(b, f"kind {i}", 0.0, 10)) for i in range(1000))
    assert at_once == 20
    # Then one line a second, whatever the number of kinds.
    assert sum(len(shown(b, f"other {i}", 10.0, 1)) for i in range(1000)) == 10


def test_the_table_of_kinds_is_bounded_and_forgets_the_least_recent() -> None:
    b = LogBudget(burst=1, interval=60, total_burst=10**9, max_kinds=3)
    for kind in ("a", "b", "c"):
        shown(b, kind, 0.0, 5)
    b.admit("a", 1.0)  # "a" seen again: "b" is now the oldest
    b.admit("d", 1.0)
    assert len(b._kinds) == 3 and "b" not in b._kinds
    assert b.admit("b", 1.0) == Admit(True)  # forgotten: a fresh burst


def test_time_going_backwards_gives_nothing_back() -> None:
    b = LogBudget(burst=1, interval=60)
    assert shown(b, "k", 100.0, 3) == [Admit(True), Admit(True, limiting=True)]
    assert b.admit("k", 0.0) == HIDE


@pytest.mark.parametrize("bad", [{"burst": 0}, {"interval": 0}, {"total_burst": 0}, {"max_kinds": 0}])
def test_budgets_must_be_positive(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LogBudget(**bad)  # type: ignore[arg-type]


def test_the_filter_keys_on_the_template_and_marks_the_lines_around_a_gap() -> None:
    clock = [0.0]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(
        BudgetFilter(LogBudget(burst=2, interval=60), clock=lambda: clock[0], chatter=LogBudget(burst=3, interval=1.0))
    )
    log = logging.getLogger("p2pshare.test_logbudget")
    log.addHandler(handler)
    log.propagate, level = False, log.level
    log.setLevel(logging.INFO)
    try:
        for peer in range(10):  # one kind: the peer ID is an argument
            log.warning("refused %s", f"peer{peer}")
        for peer in range(6):  # info lines: their own budget, not the warnings'
            log.info("reservation of %s refreshed", f"peer{peer}")
        clock[0] = 60.0
        log.warning("refused %s", "late")
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "refused peer0",
        "refused peer1",
        "refused peer2" + limited_note(60.0),
        "reservation of peer0 refreshed",
        "reservation of peer1 refreshed",
        "reservation of peer2 refreshed",
        "reservation of peer3 refreshed" + limited_note(1.0),
        "refused late" + suppressed_note(7),
    ]


def _emit(formatter: logging.Formatter, msg: str, *args: object, exc: BaseException | None = None) -> str:
    record = logging.LogRecord("p2pshare.x", logging.WARNING, __file__, 1, msg, args, None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    return formatter.format(record)


def test_a_peers_text_cannot_forge_lines_or_drive_the_terminal() -> None:
    from p2pshare.node._stderr_log import _PlainFormatter, _SafeFormatter

    evil = "ok\nINFO fake line\r\x1b[2J\x1b]0;title\x07\u202etxt.exe"
    plain = _emit(_PlainFormatter(), "malformed message from %s", evil)
    assert plain == "p2pshare: warning: malformed message from ok?INFO fake line??[2J?]0;title??txt.exe"
    verbose = _emit(_SafeFormatter("%(levelname)s %(message)s"), "from %s", evil)
    assert "\n" not in verbose and "\x1b" not in verbose and "\r" not in verbose
    assert len(_emit(_PlainFormatter(), "%s", "x" * 10_000)) < 1100  # bounded, marked as cut


def test_without_v_an_exception_is_named_not_traced() -> None:
    from p2pshare.node._stderr_log import _PlainFormatter, _SafeFormatter

    try:
        raise OSError(24, "Too many open files")
    except OSError as e:
        err = e
    assert _emit(_PlainFormatter(), "accept failed", exc=err) == (
        "p2pshare: warning: accept failed (OSError: [Errno 24] Too many open files)"
    )
    assert "Traceback" in _emit(_SafeFormatter("%(message)s"), "accept failed", exc=err)  # -v keeps it


def test_a_library_flood_cannot_spend_our_own_lines_budget() -> None:
    """py-libp2p puts peer IDs in some warnings' text: a peer makes as many
    kinds as it has IDs. Our own lines keep a budget of their own."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(BudgetFilter(clock=lambda: 0.0))
    lib, ours = logging.getLogger("libp2p.test_flood"), logging.getLogger("p2pshare.test_flood")
    for log in (lib, ours):
        log.addHandler(handler)
        log.propagate = False
    try:
        for i in range(10_000):
            lib.warning(f"stream from peer{i} failed")  # a new kind each time
        ours.warning("cannot write %s: disk full", "x")
    finally:
        for log in (lib, ours):
            log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 51 and lines[-1] == "cannot write x: disk full"


def test_a_broken_log_call_past_the_burst_does_not_raise_at_its_caller() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(BudgetFilter(LogBudget(burst=1, interval=60), clock=lambda: 0.0))
    log = logging.getLogger("p2pshare.test_broken_call")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("fine %s", "once")
        log.warning("fine %s")  # missing argument: the limiting note is added without formatting
    finally:
        log.removeHandler(handler)
    assert stream.getvalue().splitlines()[-1].startswith("fine %s [repeated:")
