"""The CLI's reporter: what ``--json`` prints."""

from __future__ import annotations

import io
import json

from p2pshare.node._output import Reporter


def test_json_progress_is_printed_only_when_it_moved() -> None:
    """The transfer's final report repeats its last figures; scripts saw
    the same ``progress`` line twice."""
    out = io.StringIO()
    reporter = Reporter(json_mode=True, out=out, err=io.StringIO())
    for done in (1, 2, 2, 3, 3):
        reporter.progress(done, 3)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["bytes"] for e in lines] == [1, 2, 3] and all(e["event"] == "progress" for e in lines)


def test_json_warnings_never_come_before_the_first_event() -> None:
    """The README promises it; `get --json` printed an offline or config
    warning as its first line, before `connected` (a usability review)."""
    import json

    out = io.StringIO()
    reporter = Reporter(json_mode=True, out=out, err=io.StringIO())
    reporter.warning("offline")
    reporter.warning("unknown key in config.toml")
    assert out.getvalue() == ""
    reporter.event("connected", path="direct")
    reporter.warning("later")
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == [
        "connected",
        "warning",
        "warning",
        "warning",
    ]
    out = io.StringIO()
    failing = Reporter(json_mode=True, out=out, err=io.StringIO())
    failing.warning("offline")
    failing.error("could not reach the sharer", 3)
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["warning", "error"]
    quiet = Reporter(json_mode=True, out=(out := io.StringIO()), err=io.StringIO())
    quiet.warning("said, though nothing else was")
    quiet.flush()  # the command line's last word
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["warning"]
