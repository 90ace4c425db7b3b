"""Progress in a 60-column terminal, both sides, through the real CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.helpers import free_port, tree_digest, write_random
from tests.cli.ptyproc import PtyProc, redraws, segments

pytestmark = pytest.mark.slow
COLUMNS = 60


def test_progress_fits_60_columns_and_redraws_in_place(tmp_path: Path) -> None:
    share = tmp_path / "src" / "film"
    write_random(share / "film.mkv", 48 << 20)
    (share / "subs.srt").write_text("1\n00:00:01 --> 00:00:02\nhello\n")
    port = free_port()
    sharer = PtyProc(["share", str(share), "--listen", f"/ip4/127.0.0.1/tcp/{port}"], tmp_path / "sh", COLUMNS)
    getter: PtyProc | None = None
    try:
        shown = sharer.read_until("Ctrl-C stops sharing", timeout=60)
        code = next(line.strip() for line in shown.splitlines() if line.strip().startswith("ey"))
        out = tmp_path / "out"
        getter = PtyProc(["get", code, "-o", str(out), "--yes"], tmp_path / "rx", COLUMNS)
        assert getter.wait() == 0, getter.output
        sharer.read_until("finished (", timeout=60)
    finally:
        sharer.close()
        if getter is not None:
            getter.close()
    assert tree_digest(out / "film") == tree_digest(share)
    raw = getter.output
    drawn = redraws(raw)
    too_wide = [s for s in drawn if len(s) > COLUMNS - 1]
    assert not too_wide, too_wide  # a segment this wide would wrap: a redraw would add a line
    assert any(re.search(r"\d+% .*ETA", s) for s in drawn), drawn  # the bar was drawn
    # Every redraw of the bar stays on one terminal line: one raw line holds them all.
    assert sum("ETA" in line for line in raw.split("\n")) == 1, raw
    assert "MB/s" not in raw and "0 B/s" not in raw
    first_bar = next(s for s in drawn if "ETA" in s)
    assert "ETA 0s" not in first_bar and "-- /s" in first_bar, first_bar  # no rate yet: dashes
    assert f"into {out}/film/, all verified" in raw
    assert not [s for s in redraws(sharer.output) if len(s) > COLUMNS - 1]
    assert any(
        re.search(r"finished \(48\.0 MiB sent in [\d.]+ s, [\d.]+ [KMG]iB/s\)", s) for s in segments(sharer.output)
    ), sharer.output
