"""Building a manifest from real files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from xfer_helpers import make_tree, write_file

from p2pshare.transfer.errors import SourceError
from p2pshare.transfer.manifest import EMPTY_SHA256
from p2pshare.transfer.scan import build_manifest
from tests.harness import file_modes_bind

CS = 64 * 1024


def test_tree(tmp_path: Path) -> None:
    top = make_tree(tmp_path)
    os.symlink("/etc/passwd", top / "link")
    os.mkfifo(top / "fifo")
    prepared = build_manifest([top], name="t", chunk_size=CS, key=b"k" * 32)
    m = prepared.manifest
    paths = {f.path: f for f in m.files}
    assert set(paths) == {"tree/empty.txt", "tree/big.bin", "tree/sub/exact.bin", "tree/sub/deeper/small.bin"}
    assert set(m.dirs) == {"tree", "tree/empty-dir", "tree/sub", "tree/sub/deeper"}
    assert paths["tree/empty.txt"].chunk_hashes == () and paths["tree/empty.txt"].sha256 == EMPTY_SHA256
    big = (top / "big.bin").read_bytes()
    assert paths["tree/big.bin"].sha256 == hashlib.sha256(big).digest()
    assert paths["tree/big.bin"].chunk_hashes[1] == hashlib.sha256(big[CS : 2 * CS]).digest()
    assert len(paths["tree/sub/exact.bin"].chunk_hashes) == 2
    assert any("symlink" in w and "link" in w for w in prepared.warnings)
    assert any("special file" in w and "fifo" in w for w in prepared.warnings)
    for f, src in zip(m.files, prepared.sources, strict=True):
        assert Path(src) == top.parent / f.path
    assert len(prepared.share_id) == 16


def test_single_file_and_several_paths(tmp_path: Path) -> None:
    a = write_file(tmp_path / "x" / "a.bin", 5)
    b = write_file(tmp_path / "y" / "b.bin", 0)
    m = build_manifest([a, b], name="t").manifest
    assert [f.path for f in m.files] == ["a.bin", "b.bin"] and m.dirs == ()


def test_same_basename_twice(tmp_path: Path) -> None:
    a = write_file(tmp_path / "x" / "same", 1)
    b = write_file(tmp_path / "y" / "same", 1)
    with pytest.raises(SourceError, match="same name"):
        build_manifest([a, b], name="t")


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        build_manifest([tmp_path / "nope"], name="t")


def test_no_paths() -> None:
    with pytest.raises(SourceError):
        build_manifest([], name="t")


def test_unreadable_file_in_a_folder_is_skipped_with_a_warning(tmp_path: Path) -> None:
    """Listed, then failing the share once its code was out (a usability
    review, stop 44): now skipped when listed, like a special file."""
    write_file(tmp_path / "d" / "ok", 10)
    f = write_file(tmp_path / "d" / "secret", 10)
    f.chmod(0)
    # In a process where the mode binds, root included (see file_modes_bind).
    script = (
        "import sys\n"
        "from p2pshare.transfer.scan import build_manifest\n"
        "prepared = build_manifest([sys.argv[1]], name='t')\n"
        "print([f.path for f in prepared.manifest.files], prepared.warnings)\n"
    )
    res = subprocess.run(
        [*file_modes_bind(), sys.executable, "-c", script, str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"{['d/ok']} {(f'skipped {f}: cannot read it (permission denied)',)}", res.stdout


def test_unsafe_names_skipped_with_warning(tmp_path: Path) -> None:
    top = tmp_path / "top"
    write_file(top / "ok", 1)
    write_file(top / "back\\slash", 1)
    write_file(top / "ctl\x01", 1)
    write_file(top / "Case", 1)
    write_file(top / "case", 1)
    prepared = build_manifest([top], name="t")
    names = sorted(f.path for f in prepared.manifest.files)
    assert names == ["top/Case", "top/ok"]
    assert len(prepared.warnings) == 3


def test_root_and_special_top_level(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no name"):
        build_manifest([Path("/")], name="t")
    os.mkfifo(tmp_path / "f")
    with pytest.raises(SourceError, match="not a regular file"):
        build_manifest([tmp_path / "f"], name="t")


def test_more_entries_than_a_manifest_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from p2pshare.transfer import scan as scan_mod

    monkeypatch.setattr(scan_mod, "MAX_ENTRIES", 5)
    top = tmp_path / "t"
    (top / "a").mkdir(parents=True)
    for i in range(3):
        (top / "a" / str(i)).write_bytes(b"x")
    assert len(scan_mod.scan_paths([top]).files) == 3  # 3 files + 2 folders: at the limit
    (top / "a" / "3").write_bytes(b"x")
    with pytest.raises(SourceError, match="4 files and 2 folders: one share holds at most 5 entries"):
        scan_mod.scan_paths([top])


def test_entries_deeper_than_a_manifest_holds_are_skipped_with_a_warning(tmp_path: Path) -> None:
    from p2pshare.transfer.paths import MAX_DEPTH

    top = tmp_path / "top"
    deep = top
    for _ in range(MAX_DEPTH - 1):  # top/d/d/...: MAX_DEPTH components in all
        deep = deep / "d"
    write_file(deep.parent / "last-allowed", 3)
    write_file(deep / "too-deep", 5)
    write_file(deep / "below" / "further", 7)
    write_file(top / "shallow", 1)
    prepared = build_manifest([top], name="t")  # no late "unsafe path" refusal after hashing
    paths = {f.path for f in prepared.manifest.files}
    assert paths == {"top/shallow", "/".join(["top"] + ["d"] * (MAX_DEPTH - 2) + ["last-allowed"])}
    assert all(len(p.split("/")) <= MAX_DEPTH for p in paths)
    skipped = [w for w in prepared.warnings if f"deeper than {MAX_DEPTH} levels" in w]
    # One warning for each entry at the limit, none for what lies under them.
    assert len(skipped) == 2 and not any("further" in w for w in prepared.warnings)
