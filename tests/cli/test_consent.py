"""Consent and fit through the real CLI: a prompt on a terminal, a refusal on a full disk."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import Proc, run, tree_digest, write_random
from tests.cli.ptyproc import PtyProc

Sharer = Callable[..., tuple[Proc, dict[str, Any]]]


def _tree(root: Path) -> Path:
    share = root / "holiday"
    write_random(share / "beach.jpg", 300_000)
    (share / "notes.txt").write_text("sun\n")
    return share


@pytest.fixture
def pty_procs() -> Iterator[list[PtyProc]]:
    started: list[PtyProc] = []
    yield started
    for p in started:
        p.close()


@pytest.mark.parametrize(("answer", "exit_code"), [("y\n", 0), ("n\n", 6), ("\n", 6), ("\x04", 6)])
def test_get_asks_on_a_terminal(
    tmp_path: Path, sharer: Sharer, pty_procs: list[PtyProc], answer: str, exit_code: int
) -> None:
    share = _tree(tmp_path / "src")
    _, shared = sharer(share, extra=("--sharer", "Alice"))
    out = tmp_path / "out"
    p = PtyProc(["get", shared["code"], "-o", str(out), "--timeout", "30"], tmp_path / "rx")
    pty_procs.append(p)
    screen = p.read_until("[y/N]")
    assert "'holiday' from Alice: 2 files" in screen
    assert "holiday/beach.jpg  (293.0 KiB)" in screen and "holiday/notes.txt  (4 B)" in screen
    assert "free here" in screen
    assert not (out / "holiday").exists() and not (out / ".p2pshare-partial").exists()  # nothing before yes
    p.send(answer)
    assert p.wait() == exit_code, p.output
    if exit_code == 0:
        assert tree_digest(out / "holiday") == tree_digest(share)
        assert f"into {out}/holiday/, all verified" in p.output
    else:
        assert "declined" in p.output and "[y/N] p2pshare: error" not in p.output  # Ctrl-D: a line of its own
        assert not out.exists()  # -o named a new directory: not even that is left


def test_yes_on_a_terminal_does_not_ask(tmp_path: Path, sharer: Sharer, pty_procs: list[PtyProc]) -> None:
    share = _tree(tmp_path / "src")
    _, shared = sharer(share)
    out = tmp_path / "out"
    p = PtyProc(["get", "-v", shared["code"], "-o", str(out), "--yes"], tmp_path / "rx")
    pty_procs.append(p)
    assert p.wait() == 0, p.output
    assert "[y/N]" not in p.output
    assert tree_digest(out / "holiday") == tree_digest(share)


def test_without_a_terminal_get_proceeds_and_json_lists_the_files(tmp_path: Path, sharer: Sharer) -> None:
    share = _tree(tmp_path / "src")
    _, shared = sharer(share)
    res = run(["get", shared["code"], "-o", str(tmp_path / "out"), "--json"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    import json

    events = [json.loads(line) for line in res.stdout.splitlines()]
    manifest = next(e for e in events if e["event"] == "manifest")
    assert sorted(manifest["entries"], key=lambda e: e["path"]) == [
        {"path": "holiday/beach.jpg", "size": 300_000},
        {"path": "holiday/notes.txt", "size": 4},
    ]
    done = next(e for e in events if e["event"] == "done")
    assert done["saved_to"] == str(tmp_path / "out" / "holiday")


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True, capture_output=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
@pytest.mark.parametrize("flags", [("--yes",), ()])
def test_a_share_that_does_not_fit_is_refused_before_writing(
    tmp_path: Path, sharer: Sharer, flags: tuple[str, ...]
) -> None:
    src = tmp_path / "src" / "big"
    write_random(src / "big.bin", 2 << 20)
    _, shared = sharer(src)
    with small_tmpfs(tmp_path / "small", "1m") as small:
        res = run(["get", shared["code"], "-o", str(small), *flags, "--timeout", "30"], tmp_path / "rx")
        assert res.returncode == 5, res.stderr
        errors = [line for line in res.stderr.splitlines() if line.startswith("p2pshare: error:")]
        assert len(errors) == 1, res.stderr
        assert "does not fit" in errors[0] and "2.0 MiB" in errors[0] and "-o" in errors[0]
        assert os.listdir(small) == []  # not a byte, not a directory


def test_json_on_a_terminal_never_asks(tmp_path: Path, sharer: Sharer, pty_procs: list[PtyProc]) -> None:
    share = _tree(tmp_path / "src")
    _, shared = sharer(share)
    p = PtyProc(["get", shared["code"], "-o", str(tmp_path / "out"), "--json"], tmp_path / "rx")
    pty_procs.append(p)
    assert p.wait() == 0, p.output
    assert "[y/N]" not in p.output and '"event":"done"' in p.output


def test_with_stderr_redirected_get_asks_on_the_terminal(
    tmp_path: Path, sharer: Sharer, pty_procs: list[PtyProc]
) -> None:
    """``get CODE 2>log`` at a terminal wrote the question into the log and
    waited for an answer nobody was asked for. It asks on the terminal now
    (``/dev/tty``, as ssh and sudo do), with the list; the log keeps the list.
    Found by a usability review."""
    share = _tree(tmp_path / "src")
    _, shared = sharer(share)
    log = tmp_path / "get.log"
    out = tmp_path / "out"
    p = PtyProc(["get", shared["code"], "-o", str(out), "--timeout", "30"], tmp_path / "rx", stderr_to=log)
    pty_procs.append(p)
    p.read_until("[y/N]")
    assert "holiday/beach.jpg" in p.output, p.output  # the list, before the question
    p.send("y\n")
    assert p.wait() == 0, log.read_text()
    said = log.read_text()
    assert "[y/N]" not in said and "holiday/beach.jpg" in said, said  # the log keeps the list
    assert (out / "holiday" / "notes.txt").read_text() == "sun\n"


def test_ctrl_c_at_the_prompt_is_exit_130_and_writes_nothing(
    tmp_path: Path, sharer: Sharer, pty_procs: list[PtyProc]
) -> None:
    """Ctrl-C while ``get`` waits for y/N (its answer is read in a thread):
    the signal cancels the wait, ``get`` exits 130 with one line, and
    nothing was written."""
    share = _tree(tmp_path / "src")
    _, shared = sharer(share)
    out = tmp_path / "out"
    p = PtyProc(["get", shared["code"], "-o", str(out), "--timeout", "30"], tmp_path / "rx")
    pty_procs.append(p)
    p.read_until("[y/N]")
    p.proc.send_signal(signal.SIGINT)  # what a terminal sends its foreground job on Ctrl-C
    assert p.wait(30) == 130, p.output
    assert "interrupted; nothing was received" in p.output and "Traceback" not in p.output
    assert "[y/N] p2pshare" not in p.output, p.output  # the error on a line of its own (a review)
    assert not out.exists()


def test_a_second_get_of_the_same_share_into_the_same_directory_is_refused(
    tmp_path: Path, sharer: Sharer, pty_procs: list[PtyProc]
) -> None:
    """Two ``get``s of one share into one directory would write the same
    partial files (one ended "cannot create …: No such file or directory").
    The first holds the share's partial directory; the second exits 2 at
    once with one line saying so, and writes nothing; the first goes on."""
    from p2pshare import sharecode
    from p2pshare.transfer import share_id_for
    from p2pshare.transfer.paths import PARTIAL_DIR_NAME

    share = _tree(tmp_path / "src")
    _, shared = sharer(share)
    out = tmp_path / "out"
    code = sharecode.parse_code(shared["code"])
    assert isinstance(code, sharecode.ShareCode)
    # What an interrupted earlier run leaves: the first get takes it over at once.
    (out / PARTIAL_DIR_NAME / share_id_for(code.encryption_key, code.share_code).hex()).mkdir(parents=True)
    first = PtyProc(["get", shared["code"], "-o", str(out), "--timeout", "30"], tmp_path / "rx1")
    pty_procs.append(first)
    first.read_until("[y/N]")  # holding it while the person decides
    second = run(["get", shared["code"], "-o", str(out), "--timeout", "30"], tmp_path / "rx2")
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert lines[-1].startswith("p2pshare: error: another p2pshare get is receiving this share into"), lines
    assert "Traceback" not in second.stderr and not (out / "holiday").exists()
    first.send("y\n")
    assert first.wait() == 0, first.output
    assert tree_digest(out / "holiday") == tree_digest(share)
    assert not (out / PARTIAL_DIR_NAME).exists()


def test_hidden_names_at_the_top_are_named_before_the_question(
    tmp_path: Path, sharer: Sharer, pty_procs: list[PtyProc]
) -> None:
    """A share that puts ``.bash_profile`` or ``.ssh/`` in the output
    directory says so before the question, after however many files (a
    hostile-peer review, stop 44: they hid behind "… and 43 more")."""
    src = tmp_path / "src"
    photos = src / "photos"
    for i in range(7):
        write_random(photos / f"p{i}.jpg", 1000)
    (src / ".bash_profile").write_text("echo hi\n")
    (src / ".ssh").mkdir()
    (src / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA x\n")
    _, shared = sharer(photos, src / ".bash_profile", src / ".ssh")
    out = tmp_path / "out"
    p = PtyProc(["get", shared["code"], "-o", str(out), "--timeout", "30"], tmp_path / "rx")
    pty_procs.append(p)
    screen = p.read_until("[y/N]")
    assert "… and 4 more" in screen
    assert (
        "p2pshare: warning: the share puts 2 hidden names at the top of the output directory, where programs read "
        "their settings: .bash_profile, .ssh/ (1 file)"
    ) in " ".join(screen.split()), screen
    p.send("n\n")
    assert p.wait() == 6, p.output
    assert not out.exists()
    # A program is told with a warning event.
    res = run(["get", shared["code"], "-o", str(out), "--json", "--yes"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    warnings = [e for e in map(json.loads, res.stdout.splitlines()) if e["event"] == "warning"]
    assert [w["message"] for w in warnings] == [
        "the share puts 2 hidden names at the top of the output directory, where programs read their settings: "
        ".bash_profile, .ssh/ (1 file)"
    ]
    assert (out / ".bash_profile").read_text() == "echo hi\n"


def test_the_question_says_what_an_earlier_run_left(tmp_path: Path, sharer: Sharer, pty_procs: list[PtyProc]) -> None:
    """ "Needs 4 B" alone did not say that the rest of the share was already here."""
    share = _tree(tmp_path / "src")
    _, shared = sharer(share)
    out = tmp_path / "out"
    (out / "holiday").mkdir(parents=True)
    (out / "holiday" / "beach.jpg").write_bytes((share / "beach.jpg").read_bytes())
    p = PtyProc(["get", shared["code"], "-o", str(out), "--timeout", "30"], tmp_path / "rx")
    pty_procs.append(p)
    screen = p.read_until("[y/N]")
    assert "Needs 4.0 KiB more (293.0 KiB already here);" in screen, screen  # 4 B and a folder's block
    p.send("y\n")
    assert p.wait() == 0, p.output
    assert tree_digest(out / "holiday") == tree_digest(share)
