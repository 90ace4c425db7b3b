"""A partial directory someone else wrote into, through the real CLI
(a hostile-peer review of the transfer protocol, stop 44)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pshare.node.cmd_get import parse_any_code
from p2pshare.transfer.crypto import share_id_for
from p2pshare.transfer.paths import PARTIAL_DIR_NAME
from tests.cli.helpers import Proc, run, write_random

Sharer = Callable[..., tuple[Proc, dict[str, Any]]]


def _partial_dir(out: Path, code: str) -> Path:
    parsed = parse_any_code(code)
    return out / PARTIAL_DIR_NAME / share_id_for(parsed.encryption_key, parsed.share_code).hex()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_directory_in_the_partial_directory_does_not_fail_a_complete_get(tmp_path: Path, sharer: Sharer) -> None:
    """``finish`` removed every number-named leftover and failed on a
    directory: "cannot write into OUT: Is a directory", exit 2, on every run,
    after the file was placed and verified."""
    src = tmp_path / "a.bin"
    write_random(src, 300_000)
    _, shared = sharer(src)
    out = tmp_path / "out"
    (_partial_dir(out, shared["code"]) / "99").mkdir(parents=True)
    res = run(["get", shared["code"], "-o", str(out), "--yes"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert _digest(out / "a.bin") == _digest(src)


def test_a_hard_link_in_the_partial_directory_is_not_written_through(tmp_path: Path, sharer: Sharer) -> None:
    """A file outside the output directory, hard-linked in as file 0's
    partial: ``get`` truncated it, wrote the share into it and placed that
    inode as the verified file (still shared with whoever linked it)."""
    src = tmp_path / "a.bin"
    write_random(src, 300_000)
    _, shared = sharer(src)
    out = tmp_path / "out"
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"important\n" * 100_000)
    before = _digest(victim)
    partial = _partial_dir(out, shared["code"])
    partial.mkdir(parents=True)
    os.link(victim, partial / "0")
    res = run(["get", shared["code"], "-o", str(out), "--yes"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert _digest(victim) == before
    assert _digest(out / "a.bin") == _digest(src)
    assert os.stat(out / "a.bin").st_ino != os.stat(victim).st_ino


def test_a_file_placed_from_an_earlier_runs_data_is_not_already_here(tmp_path: Path, sharer: Sharer) -> None:
    """A file that arrived in an earlier run whose name another file took
    meanwhile is placed by a later ``--rename`` run, which said "Already
    here: … nothing to receive" under "saved as 'a (1).bin'" (a usability
    review, stop 44)."""
    src = tmp_path / "a.bin"
    write_random(src, 300_000)
    _, shared = sharer(src)
    out = tmp_path / "out"
    part = _partial_dir(out, shared["code"])
    part.mkdir(parents=True)
    (part / "0").write_bytes(src.read_bytes())  # the earlier run's data, verified again by this one
    (out / "a.bin").write_bytes(b"theirs")  # the name, taken meanwhile
    res = run(["get", shared["code"], "-o", str(out), "--yes", "--rename"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    said = res.stdout + res.stderr
    assert "saved as 'a (1).bin'" in said and "Already here" not in said, said
    assert "Finished 1 file, 293.0 KiB" in said and "the data came in an earlier run" in said, said
    assert _digest(out / "a (1).bin") == _digest(src) and (out / "a.bin").read_bytes() == b"theirs"
