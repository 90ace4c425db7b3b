"""``share`` prints its code before hashing ends (issue 12), real processes.

The assertions are on the order of events, never on how long anything took:
the code (``shared``) comes before a ``preparing`` report with bytes still
to hash; a getter that connects while the share is held in preparation
reports ``preparing`` and then receives correct data; a re-share of
unchanged files is answered from the hash cache.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import Proc, start, tree_digest, write_random

Sharer = Callable[..., tuple[Proc, dict[str, Any]]]
HOLD_ENV = "P2PSHARE_TEST_HOLD_PREPARED"


def backdate(path: Path) -> None:
    t = time.time() - 60
    os.utime(path, (t, t))


def test_code_comes_before_hashing_a_large_sparse_file(tmp_path: Path, sharer: Sharer) -> None:
    """4 GiB of holes: hashing it reads 4 GiB; the code is out long before
    (the old share hashed first and printed the code only then)."""
    big = tmp_path / "big.img"
    with open(big, "wb") as f:
        f.truncate(4 << 30)
    proc, shared = sharer(big)  # the fixture checks that `shared` is the first event
    assert shared["code"]
    events = proc.wait_for("ready", timeout=300)
    kinds = [e["event"] for e in events]
    assert "preparing" in kinds and kinds[-1] == "ready"
    first = next(e for e in events if e["event"] == "preparing")
    assert first["done"] < first["total"] == 4 << 30
    assert events[-1]["files"] == 1 and events[-1]["cached_files"] == 0


def test_a_getter_that_connects_early_waits_then_gets_the_data(
    tmp_path: Path, sharer: Sharer, procs: list[Proc], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    write_random(src / "data.bin", 3 << 20)
    (src / "small.txt").write_text("hi\n")
    hold = tmp_path / "hold"
    monkeypatch.setenv(HOLD_ENV, str(hold))  # the sharer serves nothing until the file exists
    proc, shared = sharer(src)
    out = tmp_path / "out"
    getter = start(["get", shared["code"], "-o", str(out), "--json", "--yes"], tmp_path / "rx-home")
    procs.append(getter)
    seen = getter.wait_for("preparing", timeout=60)
    assert "manifest" not in [e["event"] for e in seen]
    assert seen[-1]["total"] == (3 << 20) + 3
    hold.write_text("go")
    rest = getter.wait_for("done", timeout=120)
    assert "manifest" in [e["event"] for e in rest]
    assert getter.wait(timeout=60) == 0
    assert tree_digest(out / "src") == tree_digest(src)
    assert proc.wait_for("ready", timeout=30)[-1]["event"] == "ready"


def test_resharing_unchanged_files_uses_the_hash_cache(tmp_path: Path, sharer: Sharer) -> None:
    src = tmp_path / "src"
    write_random(src / "a.bin", 2 << 20)
    (src / "b.txt").write_text("b\n")
    for f in src.iterdir():
        backdate(f)
    home = tmp_path / "sharer-home"
    forgotten = home / "hash-cache" / ("f" * 32 + ".hashes")  # a share of other paths, long ago
    forgotten.parent.mkdir(parents=True)
    forgotten.write_bytes(b"p2pshare hash cache 2\n")
    old = time.time() - 100 * 86400
    os.utime(forgotten, (old, old))
    version_1 = home / "hash-cache" / ("e" * 32 + ".json")  # an earlier release's format: never read again
    version_1.write_text('{"version":1,"files":[]}')
    first, _ = sharer(src, home=home)
    assert first.wait_for("ready", timeout=60)[-1]["cached_files"] == 0
    first.close()
    assert list((home / "hash-cache").glob("*.hashes")) and not forgotten.exists()  # the directory stays bounded
    assert not version_1.exists()
    again, _ = sharer(src, home=home)
    assert again.wait_for("ready", timeout=60)[-1]["cached_files"] == 2
    again.close()
    (src / "b.txt").write_text("B\n")  # changed: hashed again, the other file still cached
    backdate(src / "b.txt")
    changed, _ = sharer(src, home=home)
    assert changed.wait_for("ready", timeout=60)[-1]["cached_files"] == 1


HOLD_SCAN_ENV = "P2PSHARE_TEST_HOLD_SCAN"


def test_the_code_comes_before_a_long_listing_ends(
    tmp_path: Path, sharer: Sharer, procs: list[Proc], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tree whose listing takes longer than the wait (here: held) gets its
    code at once; a getter that connects meanwhile hears `preparing`, then
    receives the files once they are listed and hashed."""
    src = tmp_path / "src"
    write_random(src / "a" / "data.bin", 1 << 20)
    (src / "b.txt").write_text("b\n")
    hold = tmp_path / "hold"
    monkeypatch.setenv(HOLD_SCAN_ENV, str(hold))  # the listing ends only once the file exists
    proc, shared = sharer(src)  # `shared` (the code) is the first event, while still listing
    out = tmp_path / "out"
    getter = start(["get", shared["code"], "-o", str(out), "--json", "--yes"], tmp_path / "rx-home")
    procs.append(getter)
    seen = getter.wait_for("preparing", timeout=60)
    assert "manifest" not in [e["event"] for e in seen]
    assert seen[-1]["done"] == 0  # nothing listed yet, so nothing hashed
    hold.write_text("go")
    assert getter.wait_for("done", timeout=120)
    assert getter.wait(timeout=60) == 0
    assert tree_digest(out / "src") == tree_digest(src)
    assert proc.wait_for("ready", timeout=30)[-1]["files"] == 2


def _a_held_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A small tree whose listing waits until the returned hold file exists."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.txt").write_text("f\n")
    hold = tmp_path / "hold"
    monkeypatch.setenv(HOLD_SCAN_ENV, str(hold))
    return src, hold


def _remove_then_release(src: Path, hold: Path) -> None:
    """Remove the tree, then let its listing run (and fail)."""
    (src / "sub" / "f.txt").unlink()
    (src / "sub").rmdir()
    src.rmdir()
    hold.write_text("go")


def test_a_listing_that_fails_after_the_code_ends_the_share_with_its_error(
    tmp_path: Path, sharer: Sharer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bad input found by a listing still under way when the code went out
    (the folder removed meanwhile): the share stops with a one-line error
    and the exit code such input has before a code, not a traceback."""
    src, hold = _a_held_listing(tmp_path, monkeypatch)
    proc, shared = sharer(src)
    assert shared["code"]
    _remove_then_release(src, hold)
    assert proc.wait(timeout=60) == 2
    err = proc.stderr_path.read_text()
    assert [line for line in err.splitlines() if line.startswith("p2pshare: error:")] == [
        f"p2pshare: error: {src}: no such file or directory"
    ], err
    assert "Traceback" not in err


def test_a_getter_waiting_on_a_listing_that_fails_hears_why(
    tmp_path: Path, sharer: Sharer, procs: list[Proc], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A getter that connected while the listing was held hears that the
    share failed, as a one-line error with its own exit code, before the
    sharer exits: the registry wakes the waiting session when the
    preparation fails. (Without that wake-up the session would look again
    only at its next 0.5 s report, after the sharer had exited, and the
    getter would retry a vanished sharer until its --timeout.)"""
    src, hold = _a_held_listing(tmp_path, monkeypatch)
    proc, shared = sharer(src)
    out = tmp_path / "out"
    getter = start(["get", shared["code"], "-o", str(out), "--json", "--yes"], tmp_path / "rx-home")
    procs.append(getter)
    getter.wait_for("preparing", timeout=60)
    _remove_then_release(src, hold)
    assert getter.wait(timeout=60) == 4
    err = getter.stderr_path.read_text()
    assert [line for line in err.splitlines() if line.startswith("p2pshare: error:")] == [
        "p2pshare: error: the shared files changed on the sharer's side; the sharer must share them again"
    ], err
    assert str(src) not in err  # the sharer's paths stay on its side
    assert not out.exists() or not any(out.iterdir())
    assert proc.wait(timeout=60) == 2
