"""A file that exists with other content: refused, --overwrite or --rename."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cli.helpers import Proc, run

Sharer = Callable[..., tuple[Proc, dict[str, Any]]]


def _setup(tmp_path: Path, sharer: Sharer) -> tuple[str, Path, Proc]:
    src = tmp_path / "src" / "docs"
    src.mkdir(parents=True)
    (src / "report.txt").write_text("new report\n")
    (src / "same.txt").write_text("same\n")
    proc, shared = sharer(src)
    out = tmp_path / "out"
    (out / "docs").mkdir(parents=True)
    (out / "docs" / "report.txt").write_text("my own edits\n")
    (out / "docs" / "same.txt").write_text("same\n")
    return str(shared["code"]), out, proc


def test_default_refuses_and_names_the_flags(tmp_path: Path, sharer: Sharer) -> None:
    code, out, proc = _setup(tmp_path, sharer)
    res = run(["get", code, "-o", str(out)], tmp_path / "rx")
    assert res.returncode == 2, res.stderr
    assert "refusing to overwrite" in res.stderr and "--overwrite" in res.stderr and "--rename" in res.stderr
    assert (out / "docs" / "report.txt").read_text() == "my own edits\n"
    # The sharer hears that it failed, not that names are taken: found before the
    # question, that let a sharer probe which names the receiver's directory holds.
    failed = next(e for e in proc.events(timeout=10) if e["event"] == "receiver_failed")
    assert "the receiver did not take the share" in failed["reason"], failed
    assert str(out) not in failed["reason"]


def test_overwrite_replaces_it(tmp_path: Path, sharer: Sharer) -> None:
    code, out, _ = _setup(tmp_path, sharer)
    res = run(["get", code, "-o", str(out), "--overwrite"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert (out / "docs" / "report.txt").read_text() == "new report\n"
    assert sorted(p.name for p in (out / "docs").iterdir()) == ["report.txt", "same.txt"]


def test_a_directory_in_a_files_place_is_not_offered_to_overwrite(tmp_path: Path, sharer: Sharer) -> None:
    """``--overwrite`` given, a directory where a file goes: the refusal said
    "--overwrite replaces it". Found by a usability review."""
    code, out, _ = _setup(tmp_path, sharer)
    (out / "docs" / "report.txt").unlink()
    (out / "docs" / "report.txt").mkdir()
    res = run(["get", code, "-o", str(out), "--overwrite"], tmp_path / "rx")
    assert res.returncode == 2, res.stderr
    assert "something other than a file is in its place (--overwrite replaces only files)" in res.stderr, res.stderr
    assert "--overwrite replaces it" not in res.stderr
    assert (out / "docs" / "report.txt").is_dir()


def test_rename_keeps_both_and_says_so_and_resumes_to_the_same_name(tmp_path: Path, sharer: Sharer) -> None:
    code, out, _ = _setup(tmp_path, sharer)
    res = run(["get", code, "-o", str(out), "--rename"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert (out / "docs" / "report.txt").read_text() == "my own edits\n"
    assert (out / "docs" / "report (1).txt").read_text() == "new report\n"
    assert "saved as 'report (1).txt'" in res.stderr
    again = run(["get", code, "-o", str(out), "--rename"], tmp_path / "rx")
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (out / "docs").iterdir()) == ["report (1).txt", "report.txt", "same.txt"]


def test_rename_of_one_file_names_the_file_received(tmp_path: Path, sharer: Sharer) -> None:
    """The summary and ``saved_to`` named the file that was already there."""
    src = tmp_path / "src" / "single.txt"
    src.parent.mkdir()
    src.write_text("theirs\n")
    _, shared = sharer(src)
    for out, flags in ((tmp_path / "out1", ["--json"]), (tmp_path / "out2", [])):
        out.mkdir()
        (out / "single.txt").write_text("mine\n")
        res = run(["get", str(shared["code"]), "-o", str(out), "--rename", *flags], tmp_path / "rx")
        assert res.returncode == 0, res.stderr
        if flags:
            done = json.loads(res.stdout.strip().splitlines()[-1])
            assert done["event"] == "done" and Path(done["saved_to"]) == out / "single (1).txt"
        else:
            assert f"to {out / 'single (1).txt'}, all verified" in res.stdout, res.stdout
            assert "(receiving without asking: not run at a terminal" in res.stderr
        assert (out / "single (1).txt").read_text() == "theirs\n"


def test_rename_skips_names_the_share_itself_uses(tmp_path: Path, sharer: Sharer) -> None:
    """The share holds "a.txt" and "a (1).txt", and "a.txt" here differs:
    the share's "a.txt" must not be planned as "a (1).txt", which its own
    next file then found taken ("refusing to overwrite"), nor as a name one
    of the share's directories takes."""
    theirs = {"a (2).txt/x": "x\n", "a.txt": "theirs\n", "a (1).txt": "theirs too\n"}  # a folder takes "a (2).txt"
    for name, text in [*((f"src/d/{k}", v) for k, v in theirs.items()), ("out/d/a.txt", "mine\n")]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    _, shared = sharer(tmp_path / "src" / "d")
    out = tmp_path / "out"
    res = run(["get", str(shared["code"]), "-o", str(out), "--rename"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert (out / "d" / "a.txt").read_text() == "mine\n"
    assert (out / "d" / "a (1).txt").read_text() == "theirs too\n"
    assert (out / "d" / "a (3).txt").read_text() == "theirs\n"
    assert (out / "d" / "a (2).txt" / "x").read_text() == "x\n"
    assert "saved as 'a (3).txt'" in res.stderr


def test_overwrite_and_rename_exclude_each_other(tmp_path: Path) -> None:
    res = run(["get", "x", "--overwrite", "--rename"], tmp_path / "h")
    assert res.returncode == 2 and "not allowed with" in res.stderr
