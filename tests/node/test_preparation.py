"""``names_over_limit``: the bounded count that keeps a refusal of too many
entries before the code, without listing a large tree's sizes first."""

from __future__ import annotations

import os
from pathlib import Path

from p2pshare.node.preparation import names_over_limit
from p2pshare.transfer.scan import scan_paths


def tree(root: Path) -> Path:
    top = root / "top"
    (top / "a" / "b").mkdir(parents=True)
    for name in ("x", "a/y", "a/b/z", "a/b/w"):
        (top / name).write_text(name)
    (top / "empty").mkdir()
    os.symlink("x", top / "link")  # a name the scan skips: counted, so the count is a bound
    return top


def test_the_count_is_every_name_and_bounds_what_the_scan_finds(tmp_path: Path) -> None:
    top = tree(tmp_path)
    names = 1 + 3 + 4 + 1  # top, its 3 folders, 4 files, the link
    assert not names_over_limit((top,), limit=names)
    assert names_over_limit((top,), limit=names - 1)
    scan = scan_paths([top])
    assert len(scan.files) + len(scan.dirs) == names - 1 <= names  # the link skipped


def test_files_given_as_paths_count_one_each(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("a")
    b.write_text("b")
    assert not names_over_limit((a, b), limit=2)
    assert names_over_limit((a, b), limit=1)


def test_a_missing_path_is_left_to_the_scan(tmp_path: Path) -> None:
    """The count never fails: the scan, which follows, names the bad path."""
    top = tmp_path / "top"
    top.mkdir()
    for i in range(50):
        (top / f"f{i}").write_text("")
    assert names_over_limit((top, tmp_path / "missing"), limit=10)
    assert not names_over_limit((tmp_path / "missing",), limit=10)
