"""A real ``get`` mentions downloads left unfinished long ago in its directory."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cli.helpers import Proc, run, write_random

Sharer = Callable[..., tuple[Proc, dict[str, Any]]]


def test_get_mentions_a_download_left_unfinished_for_over_a_week(tmp_path: Path, sharer: Sharer) -> None:
    src = tmp_path / "src"
    write_random(src / "a.bin", 1000)
    _, shared = sharer(src)
    out = tmp_path / "out"
    abandoned = out / ".p2pshare-partial" / ("0" * 32)  # another share, given up on
    abandoned.mkdir(parents=True)
    write_random(abandoned / "0", 3 << 20)
    res = run(["get", shared["code"], "-o", str(out), "--yes"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert "left unfinished" not in res.stderr  # a day old is not forgotten

    old = time.time() - 8 * 86400
    for p in (abandoned / "0", abandoned):
        os.utime(p, (old, old))
    res = run(["get", shared["code"], "-o", str(tmp_path / "out"), "--yes"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    note = [ln for ln in res.stderr.splitlines() if ln.startswith("note: ")]
    assert note == [
        f"note: {out / '.p2pshare-partial'} holds 3.0 MiB from 1 download left unfinished for over a week; "
        "run the same get again to resume, or delete what you no longer want there"
    ]
    assert abandoned.exists()  # said, never deleted unasked

    res = run(["get", shared["code"], "-o", str(out), "--yes", "--json"], tmp_path / "rx")
    events = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert events[-1] == {
        "event": "forgotten_downloads",
        "downloads": 1,
        "bytes": 3 << 20,
        "path": str(out / ".p2pshare-partial"),
    }
