"""The real CLI, sharer and receiver in separate processes, over loopback."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pshare import sharecode
from tests.cli.helpers import Proc, cached_fraction, run, start, tree_digest, write_random

Sharer = Callable[..., tuple[Proc, dict[str, Any]]]


def make_tree(root: Path, big: int = 5 << 20) -> Path:
    top = root / "tree"
    (top / "empty-dir").mkdir(parents=True)
    (top / "sub" / "deeper").mkdir(parents=True)
    (top / "empty.txt").write_bytes(b"")
    (top / "hello.txt").write_text("hello\n")
    (top / "sub" / "deeper" / "note.md").write_text("# note\n" * 100)
    write_random(top / "sub" / "big.bin", big)
    return top


def test_share_then_get_a_tree(tmp_path: Path, sharer: Sharer) -> None:
    tree = make_tree(tmp_path)
    proc, shared = sharer(tree)
    assert shared["peer_id"].startswith("12D3KooW")
    assert shared["addresses"] and all("0.0.0.0" not in a for a in shared["addresses"])
    assert len(shared["share_code"]) >= 8
    out = tmp_path / "out"
    res = run(["get", shared["code"], "-o", str(out)], tmp_path / "rx-home")
    assert res.returncode == 0, res.stderr
    assert tree_digest(out / "tree") == tree_digest(tree)
    assert (out / "tree" / "empty-dir").is_dir()
    assert res.stdout.count("\n") == 1 and "verified" in res.stdout
    assert not (out / ".p2pshare-partial").exists()


def test_an_empty_folder_is_received_and_named(tmp_path: Path, sharer: Sharer) -> None:
    """The last line named ``out/`` for a share of one empty folder, where a
    full folder's names ``out/<folder>/``."""
    (tmp_path / "empty" / "inner").mkdir(parents=True)
    _, shared = sharer(tmp_path / "empty")
    out = tmp_path / "out"
    res = run(["get", shared["code"], "-o", str(out)], tmp_path / "rx-home")
    assert res.returncode == 0, res.stderr
    assert (out / "empty" / "inner").is_dir()
    assert f" into {out}/empty/, all verified" in res.stdout, res.stdout


def test_getting_a_share_again_says_it_is_already_here(tmp_path: Path, sharer: Sharer) -> None:
    # A second get that has nothing to fetch is not "Received 0 B (0 B/s)".
    tree = make_tree(tmp_path, big=1 << 20)
    total = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    _, shared = sharer(tree)
    out = tmp_path / "out"
    assert run(["get", shared["code"], "-o", str(out)], tmp_path / "rx").returncode == 0
    res = run(["get", shared["code"], "-o", str(out)], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"Already here: 4 files, 1.0 MiB in {out}/tree/, all verified"), res.stdout
    assert "nothing to receive" in res.stdout and "Received" not in res.stdout
    res = run(["get", shared["code"], "-o", str(out), "--json"], tmp_path / "rx")
    done = json.loads(res.stdout.splitlines()[-1])
    assert (done["event"], done["bytes"], done["already_had"]) == ("done", 0, total)
    assert tree_digest(out / "tree") == tree_digest(tree)


def test_a_tree_of_many_small_files_is_written_by_the_file_writer_processes(tmp_path: Path, sharer: Sharer) -> None:
    """Many one-chunk files are created by file-writer processes, outside the
    receiver's GIL (``transfer._whole``, issue 12); they end with the ``get``."""
    tree = tmp_path / "small"
    for i in range(600):
        write_random(tree / f"d{i // 100}" / f"f{i:03d}.txt", 200 + i * 7)
    _, shared = sharer(tree)
    out = tmp_path / "out"
    res = run(["get", shared["code"], "-o", str(out), "-vv"], tmp_path / "rx-home")
    assert res.returncode == 0, res.stderr
    assert tree_digest(out / "small") == tree_digest(tree)
    started = [line for line in res.stderr.splitlines() if "file-writer processes" in line]
    assert len(started) == 1, res.stderr[-2000:]
    pids = [int(p) for p in started[0].split("[", 1)[1].split("]", 1)[0].split(",")]
    assert len(pids) == 2 and not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_large_file_is_written_around_the_page_cache(tmp_path: Path, sharer: Sharer) -> None:
    """Large files go to disk with O_DIRECT (``transfer._direct``, issue 12):
    after the ``get`` the received file is not in the page cache, the small
    one is (written through it)."""
    tree = make_tree(tmp_path, big=8 << 20)
    _, shared = sharer(tree)
    out = tmp_path / "out"
    res = run(["get", shared["code"], "-o", str(out)], tmp_path / "rx-home")
    assert res.returncode == 0, res.stderr
    assert cached_fraction(out / "tree" / "sub" / "big.bin") < 0.25
    assert cached_fraction(out / "tree" / "hello.txt") == 1.0
    assert tree_digest(out / "tree") == tree_digest(tree)


def test_get_json_events(tmp_path: Path, sharer: Sharer) -> None:
    tree = make_tree(tmp_path, big=3 << 20)
    _, shared = sharer(tree)
    res = run(["get", shared["code"], "-o", str(tmp_path / "out"), "--json"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "connected" and kinds[-1] == "done"
    assert events[0]["path"] == "direct" and events[0]["rtt_ms"] > 0
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and progress[-1]["bytes"] == progress[-1]["total"] == sum(
        f.stat().st_size for f in tree.rglob("*") if f.is_file()
    )


def test_the_receiver_sees_the_sharers_description(tmp_path: Path, sharer: Sharer) -> None:
    """``share --description`` was never shown (found by a usability review):
    now in the lines before the question, each safe to print, and in the
    ``--json`` manifest event as given."""
    (tmp_path / "a.txt").write_text("a")
    said = "from the trip\nenjoy\tit"
    _, shared = sharer(tmp_path / "a.txt", extra=("--description", said))
    res = run(["get", shared["code"], "-o", str(tmp_path / "out")], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert "  > from the trip\n  > enjoy?it\n" in res.stderr, res.stderr
    res = run(["get", shared["code"], "-o", str(tmp_path / "out2"), "--json"], tmp_path / "rx")
    manifest = next(e for e in map(json.loads, res.stdout.splitlines()) if e["event"] == "manifest")
    assert manifest["description"] == said


def test_legacy_code(tmp_path: Path, sharer: Sharer) -> None:
    tree = make_tree(tmp_path, big=1 << 20)
    _, shared = sharer(tree)
    legacy = shared["legacy_code"]
    assert isinstance(sharecode.parse_code(legacy), sharecode.LegacyCode)
    res = run(["get", legacy, "-o", str(tmp_path / "out")], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert tree_digest(tmp_path / "out" / "tree") == tree_digest(tree)


def test_wrong_key_is_exit_4_and_writes_nothing(tmp_path: Path, sharer: Sharer) -> None:
    tree = make_tree(tmp_path, big=1 << 20)
    _, shared = sharer(tree)
    code = sharecode.parse_code(shared["code"])
    assert isinstance(code, sharecode.ShareCode)
    wrong = sharecode.ShareCode(code.peer_id, code.addresses, os.urandom(32), code.share_code)
    out = tmp_path / "out"
    res = run(["get", wrong.encode(), "-o", str(out), "--timeout", "10"], tmp_path / "rx")
    assert res.returncode == 4, res.stderr
    assert "Traceback" not in res.stderr
    assert sum(line.startswith("p2pshare: error:") for line in res.stderr.splitlines()) == 1
    assert not any(p.name != ".p2pshare-partial" for p in out.iterdir()) if out.exists() else True
    # The same with a legacy code whose key is wrong: the sharer cannot prove it.
    legacy = sharecode.parse_code(shared["legacy_code"])
    assert isinstance(legacy, sharecode.LegacyCode)
    bad = sharecode.LegacyCode(legacy.share_code, os.urandom(32), legacy.host, legacy.port)
    res = run(["get", bad.encode(), "-o", str(out), "--timeout", "10"], tmp_path / "rx")
    assert res.returncode == 4, res.stderr


def test_two_receivers_at_once(tmp_path: Path, sharer: Sharer) -> None:
    tree = make_tree(tmp_path, big=24 << 20)
    _, shared = sharer(tree)
    a = start(["get", shared["code"], "-o", str(tmp_path / "a"), "--json"], tmp_path / "rx")
    b = start(["get", shared["code"], "-o", str(tmp_path / "b"), "--json"], tmp_path / "rx")
    try:
        assert a.wait(90) == 0, a.stderr_tail()
        assert b.wait(90) == 0, b.stderr_tail()
    finally:
        a.close()
        b.close()
    want = tree_digest(tree)
    assert tree_digest(tmp_path / "a" / "tree") == want
    assert tree_digest(tmp_path / "b" / "tree") == want


def test_share_once_exits_after_one_receiver(tmp_path: Path, sharer: Sharer) -> None:
    tree = make_tree(tmp_path, big=1 << 20)
    proc, shared = sharer(tree, extra=("--once",))
    res = run(["get", shared["code"], "-o", str(tmp_path / "out")], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert proc.wait(30) == 0
    events = [json.loads(line) for line in proc.lines]
    kinds = [e["event"] for e in events]
    assert "receiver_done" in kinds and kinds[-1] == "stopped"
    # The file bytes, not the framed ones (a 4 B file read "45 B sent"; a review).
    done = next(e for e in events if e["event"] == "receiver_done")
    assert done["bytes"] == sum(f.stat().st_size for f in tree.rglob("*") if f.is_file())


def _progress_then_kill(proc: Proc, total_min: int) -> int:
    """Read `get --json` events until some but not all bytes arrived; SIGKILL."""
    for event in proc.events(timeout=60):
        if event["event"] == "progress" and 0 < event["bytes"] < event["total"]:
            proc.kill(signal.SIGKILL)
            assert event["total"] >= total_min
            return int(event["bytes"])
        assert event["event"] != "done", "transfer finished before it could be interrupted"
    raise AssertionError("no progress event")


def test_resume_after_sigkill_of_get(tmp_path: Path, sharer: Sharer) -> None:
    src = tmp_path / "src"
    write_random(src / "big.bin", 160 << 20)
    _, shared = sharer(src / "big.bin")
    out = tmp_path / "out"
    first = start(["get", shared["code"], "-o", str(out), "--json"], tmp_path / "rx")
    try:
        _progress_then_kill(first, 160 << 20)
        first.wait(10)
    finally:
        first.close()
    assert not (out / "big.bin").exists(), "an unverified file must never sit at its final name"
    res = run(["get", shared["code"], "-o", str(out), "--json"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    done = json.loads(res.stdout.splitlines()[-1])
    assert done["event"] == "done"
    assert done["bytes"] < 160 << 20, "the second run must fetch only what is missing"
    assert done["already_had"] > 0
    assert "were already here" not in res.stdout  # --json: events only
    assert tree_digest(out) == tree_digest(src)


def test_resume_after_sigkill_of_sharer(tmp_path: Path, sharer: Sharer) -> None:
    """The sharer dies mid-transfer and is started again with the same command:
    same code, same port; the running `get` reconnects and fetches only the rest."""
    from tests.cli.helpers import free_port

    src = tmp_path / "src"
    write_random(src / "big.bin", 160 << 20)
    port = free_port()
    first_sharer, shared = sharer(src / "big.bin", port=port)
    out = tmp_path / "out"
    getter = start(["get", shared["code"], "-o", str(out), "--json", "--timeout", "40"], tmp_path / "rx")
    try:
        for event in getter.events(timeout=60):
            if event["event"] == "progress" and 0 < event["bytes"] < event["total"]:
                first_sharer.kill(signal.SIGKILL)
                break
        first_sharer.wait(10)
        time.sleep(0.5)
        _, again = sharer(src / "big.bin", port=port)
        assert again["code"] == shared["code"], "sharing the same paths again must keep the code"
        assert getter.wait(60) == 0, getter.stderr_tail()
        events = [json.loads(line) for line in getter.lines]
    finally:
        getter.close()
    done = events[-1]
    assert done["event"] == "done"
    assert done["bytes"] < 160 << 20
    assert sum(1 for e in events if e["event"] == "connected") >= 2
    assert tree_digest(out) == tree_digest(src)


def test_share_stops_cleanly_on_sigint_and_sigterm(tmp_path: Path, sharer: Sharer) -> None:
    tree = make_tree(tmp_path, big=1024)
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc, _ = sharer(tree, home=tmp_path / f"home-{sig}")
        proc.kill(sig)
        assert proc.wait(20) == 0, proc.stderr_tail()
        assert json.loads(proc.lines[-1])["event"] == "stopped"
