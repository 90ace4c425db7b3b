"""``get --timeout`` holds against a sharer that stalls (issue 9, finding 2).

Before: after a retryable failure on a connection that stayed open the
receiver retried without looking at the deadline, and ``fetch`` used its
own 120 s idle timeout; with ``--timeout 10`` such sharers kept ``get``
running past 140 s. The sharer here is a real process (tests/hostile/sharer.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cli.helpers import hostile_sharer, run

pytestmark = pytest.mark.slow
TIMEOUT = 10
SLACK = 5  # process start-up and teardown on a loaded 2-core machine


@pytest.mark.parametrize("mode", ["silent", "busy", "trickle", "hangup"])
def test_get_gives_up_at_its_timeout(tmp_path: Path, mode: str) -> None:
    sharer, code = hostile_sharer("sharer", mode, tmp_path, f"hostile-{mode}")
    try:
        started = time.monotonic()
        res = run(["get", code, "-o", str(tmp_path / "out"), "--timeout", str(TIMEOUT)], tmp_path / "rx", timeout=120)
        took = time.monotonic() - started
    finally:
        sharer.stop(grace=0)
    assert res.returncode == 3, res.stderr
    assert took < TIMEOUT + SLACK, f"get ran {took:.1f} s with --timeout {TIMEOUT}"
    assert res.stderr.strip().splitlines()[-1].startswith("p2pshare: error:"), res.stderr
    if mode == "busy":  # each BUSY read "The connection dropped; reconnecting…" (a hostile-peer review)
        assert "The sharer is busy (too many transfers at once); trying again…" in res.stderr, res.stderr
        assert "The connection dropped" not in res.stderr, res.stderr
    assert not any((tmp_path / "out").glob("*")) or all(
        p.name == ".p2pshare-partial" for p in (tmp_path / "out").iterdir()
    )
