"""Holders of the key who never ask for data cannot keep a receiver out.

A hostile-peer review (stop 44) had 16 identities x 4 streams prove the
key over loopback (where no per-source cap applies) and never send WANT:
they held all 64 of a real sharer's session slots for its 600 s idle
timeout, and an honest ``get`` said "the transfer stalled". Now a
newcomer that finds every slot taken gets the slot of the session that
has waited longest for its WANT, once that wait passed ``LISTING_GRACE``
(30 s): the ``get`` hears BUSY, retries, and receives the share.
"""

from __future__ import annotations

import json
import select
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pshare.transfer.registry import LISTING_GRACE, ShareRegistry
from tests.cli.helpers import Proc, run, start_module, tree_digest, write_random

Sharer = Callable[..., tuple[Proc, dict[str, Any]]]


def _line(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return json.loads(proc.stdout.readline() or "{}") if ready else {}


def test_key_holders_at_their_question_give_a_slot_to_a_receiver(tmp_path: Path, sharer: Sharer) -> None:
    src = tmp_path / "src"
    write_random(src / "a.bin", 300_000)
    _, shared = sharer(src)
    slots = ShareRegistry().max_sessions
    args = (shared["code"], "16", str(slots // 16), str(tmp_path / "h"), "200")
    holders = start_module("tests.hostile.key_holders", *args, home=tmp_path / "holders")
    try:
        report = _line(holders, 90)
        assert report == {"at_question": slots, "busy": 0, "failed": 0}, report
        res = run(["get", shared["code"], "-o", str(tmp_path / "out"), "--yes", "--timeout", "120"], tmp_path / "rx")
        assert res.returncode == 0, res.stderr
        assert tree_digest(tmp_path / "out" / "src") == tree_digest(src)
        # It met a full sharer first, and got in, which only a displaced holder
        # makes room for: they never leave (their sessions' idle timeout is 600 s).
        assert "The sharer is busy (too many transfers at once); trying again" in res.stderr, res.stderr
        assert holders.poll() is None
        assert LISTING_GRACE <= 60  # the get's --timeout above outlasts it
    finally:
        holders.kill()
        holders.communicate()
