"""node.shares_db: records of shares pruned when long unused, kept while in use."""

from __future__ import annotations

import os
import time
from pathlib import Path

import trio
import trio.testing

from p2pshare.node.shares_db import (
    RECORD_MAX_AGE,
    ShareRecord,
    _record_path,
    keep_record_fresh,
    prune_records,
    save_record,
)


def _record(home: Path, name: str) -> Path:
    save_record(home, [home / name], name, ShareRecord(b"k" * 32, "CODE", None))
    return _record_path(home, [home / name], name)


def test_prune_deletes_old_records_and_tmp_leftovers_only(tmp_path: Path) -> None:
    old, fresh = _record(tmp_path, "old"), _record(tmp_path, "fresh")
    months = time.time() - RECORD_MAX_AGE - 60
    os.utime(old, (months, months))
    leftover = old.with_name(old.name + ".0123abcd.tmp")
    leftover.write_text("{")
    os.utime(leftover, (time.time() - 7200,) * 2)
    recent_tmp = old.with_name("x.json.4567cdef.tmp")
    recent_tmp.write_text("{")  # a write under way now: kept
    other = old.with_name("notes.txt")
    other.write_text("not ours")
    assert prune_records(tmp_path) == 2
    assert sorted(p.name for p in old.parent.iterdir()) == sorted([fresh.name, recent_tmp.name, other.name])
    assert prune_records(tmp_path / "nowhere") == 0


async def test_a_running_share_keeps_its_record_fresh(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    record = _record(tmp_path, "long")
    months = time.time() - RECORD_MAX_AGE - 60
    os.utime(record, (months, months))
    with trio.move_on_after(86400 + 1):
        await keep_record_fresh(tmp_path, [tmp_path / "long"], "long")
    assert time.time() - record.stat().st_mtime < 60
    assert prune_records(tmp_path) == 0
