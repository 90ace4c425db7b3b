"""A shared file changes on disk while it is shared (issue 9, "changed source").

Real ``share`` and ``get`` processes on loopback. The file is changed after
``share`` printed its code and before ``get`` connects: the sharer hashed it
when it shared it and re-hashes every chunk it reads, so the change is found
on the first read of the changed chunk, every run.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cli.helpers import Proc, free_port, run, tree_digest, write_random
from tests.cli.test_exit_codes import assert_one_line_error

Sharer = Callable[..., tuple[Proc, dict[str, Any]]]
MiB = 1 << 20
A_SIZE = 3 * MiB  # three 1 MiB chunks: the first goes out, the second has changed


def make_share(root: Path) -> Path:
    top = root / "share"
    write_random(top / "a.bin", A_SIZE)
    write_random(top / "b.bin", 200_000)
    (top / "notes.txt").write_text("hello\n" * 100)
    write_random(top / "sub" / "c.bin", MiB + 5)
    return top


def test_changed_file_exits_4_naming_it_with_the_rest_delivered(tmp_path: Path, sharer: Sharer) -> None:
    top = make_share(tmp_path)
    home, port = tmp_path / "sharer-home", free_port()
    proc, shared = sharer(top, home=home, port=port)
    proc.wait_for("ready", timeout=60)  # what is shared is fixed once hashed (the code comes before)
    with open(top / "a.bin", "r+b") as fh:
        fh.seek(MiB + 10)
        fh.write(b"changed after it was shared")
    out = tmp_path / "out"
    res = run(["get", shared["code"], "-o", str(out), "--timeout", "60"], tmp_path / "rx")

    assert res.returncode == 4, res.stderr
    reason = "changed on the sharer's side after it was shared"
    assert_one_line_error(res.stderr, f"3 of 4 files received into {out}; not received: share/a.bin ({reason})")
    assert f"The sharer stopped serving share/a.bin ({reason})" in res.stderr  # said when it happened
    assert res.stdout == ""  # no "Received ..." summary
    want = tree_digest(top)
    del want["a.bin"]
    assert tree_digest(out / "share") == want  # every other file complete and byte-identical
    assert not (out / "share" / "a.bin").exists()  # nothing that looks complete
    parts = [p for p in (out / ".p2pshare-partial").rglob("*") if p.is_file()]
    assert [p.stat().st_size for p in parts] == [MiB]  # its first, verified chunk is kept for later
    sharer_events = proc.events_until("receiver_done", 30)
    stopped = [e for e in sharer_events if e["event"] == "file_unavailable"]
    assert len(stopped) == 1 and stopped[0]["path"] == "share/a.bin" and stopped[0]["reason"] == "changed"
    assert str(top / "a.bin") in stopped[0]["detail"]

    # Running `get` again stops at once: the sharer remembers and says so
    # right after the manifest, without reading the file again.
    started = time.monotonic()
    res = run(["get", shared["code"], "-o", str(out), "--timeout", "60", "--json"], tmp_path / "rx")
    took = time.monotonic() - started
    assert res.returncode == 4, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert {"event": "file_unavailable", "path": "share/a.bin", "reason": "changed"} in events
    assert events[-1] == {
        "event": "error",
        "message": f"3 of 4 files received into {out}; not received: share/a.bin ({reason})",
        "exit_code": 4,
        "files": 4,
        "files_received": 3,
        "output": str(out),
        "not_received": [{"path": "share/a.bin", "reason": "changed"}],
    }
    assert took < 30, f"a retry after the notice must stop promptly, not wait for --timeout ({took:.1f} s)"
    again = proc.events_until("receiver_done", 30)
    assert [e["event"] for e in again if e["event"] == "file_unavailable"] == []  # said once per share

    # Shared again (same paths: same code), the new content arrives and the
    # kept chunk, unchanged, is not fetched again.
    proc.kill(signal.SIGINT)
    assert proc.wait(20) == 0
    _, reshared = sharer(top, home=home, port=port)
    assert reshared["code"] == shared["code"]
    res = run(["get", shared["code"], "-o", str(out), "--timeout", "60", "--json"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    done = json.loads(res.stdout.splitlines()[-1])
    assert done["event"] == "done" and done["bytes"] == A_SIZE - MiB
    assert tree_digest(out / "share") == tree_digest(top)
    assert not (out / ".p2pshare-partial").exists()


def test_many_files_the_sharer_stops_serving_are_a_few_lines_not_one_each(tmp_path: Path, sharer: Sharer) -> None:
    """A line per FILE_UNAVAILABLE: a hostile-peer review's 20,000 notices
    were 20,000 lines (up to 131,000 possible). The first few are named as
    they happen, then one line; the final error counts them all."""
    top = tmp_path / "share"
    for i in range(12):
        (top / f"f{i:02d}.txt").parent.mkdir(parents=True, exist_ok=True)
        (top / f"f{i:02d}.txt").write_text(f"first {i}\n")
    proc, shared = sharer(top)
    proc.wait_for("ready", timeout=60)
    for i in range(12):
        (top / f"f{i:02d}.txt").write_text(f"changed {i}!\n")
    res = run(["get", shared["code"], "-o", str(tmp_path / "out"), "--timeout", "60"], tmp_path / "rx")
    assert res.returncode == 4, res.stderr
    named = [line for line in res.stderr.splitlines() if line.startswith("The sharer stopped serving share/")]
    assert len(named) == 5, res.stderr
    assert "The sharer stopped serving more files; the last line names how many" in res.stderr
    assert "not received" in res.stderr.splitlines()[-1] and "12" in res.stderr.splitlines()[-1], res.stderr
