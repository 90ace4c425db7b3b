"""Downloads left unfinished long ago (``transfer.leftovers``): the pure
decision, and the bounded scan over real files."""

from __future__ import annotations

import os
import time
from pathlib import Path

from p2pshare.transfer import leftovers
from p2pshare.transfer.leftovers import Forgotten, Leftover
from p2pshare.transfer.paths import PARTIAL_DIR_NAME

DAY = 86400.0


def test_only_downloads_left_alone_for_a_week_are_mentioned() -> None:
    now = 1e9
    found = [Leftover("a", 100, now - 8 * DAY), Leftover("b", 50, now - 6 * DAY), Leftover("c", 7, now - 30 * DAY)]
    assert leftovers.forgotten(found, now) == Forgotten(2, 107)
    assert leftovers.forgotten(found[1:2], now) is None
    assert leftovers.forgotten([], now) is None


def age(path: Path, days: float) -> None:
    t = time.time() - days * DAY
    os.utime(path, (t, t), follow_symlinks=False)


def test_scan_counts_what_each_share_holds_on_disk_and_its_last_write(tmp_path: Path) -> None:
    part = tmp_path / PARTIAL_DIR_NAME
    old, fresh = part / ("a" * 32), part / ("b" * 32)
    old.mkdir(parents=True)
    fresh.mkdir()
    (old / "0").write_bytes(os.urandom(1 << 20))
    with open(old / "1", "wb") as f:  # sparse: 1 GiB long, nothing written
        f.truncate(1 << 30)
    (fresh / "0").write_bytes(b"x" * 4096)
    (part / "stray-file").write_bytes(b"not a share directory")
    (old / "link").symlink_to("/etc/passwd")  # not followed, not counted
    for p in (old / "0", old / "1", old):
        age(p, 10)
    found = {f.name: f for f in leftovers.scan(tmp_path)}
    assert set(found) == {"a" * 32, "b" * 32}
    assert (1 << 20) <= found["a" * 32].size < (1 << 20) + (1 << 16)  # the sparse file holds nothing
    assert time.time() - found["a" * 32].last_write > 9 * DAY
    assert time.time() - found["b" * 32].last_write < DAY
    assert leftovers.forgotten(list(found.values()), time.time()) == Forgotten(1, found["a" * 32].size)


def test_scan_of_a_directory_without_leftovers_is_empty(tmp_path: Path) -> None:
    assert leftovers.scan(tmp_path) == []
    assert leftovers.scan(tmp_path / "missing") == []
    (tmp_path / PARTIAL_DIR_NAME).write_text("a file, not a directory")
    assert leftovers.scan(tmp_path) == []


def test_scan_looks_at_a_bounded_number_of_entries(tmp_path: Path) -> None:
    part = tmp_path / PARTIAL_DIR_NAME / ("c" * 32)
    part.mkdir(parents=True)
    for i in range(leftovers.MAX_ENTRIES + 100):
        (part / str(i)).write_bytes(b"")
    assert len(leftovers.scan(tmp_path)) == 1  # partial, but it ends
