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
