"""share --text: a text goes over an ordinary share and get prints it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.cli.helpers import free_port, run, start
from tests.cli.ptyproc import PtyProc


def _shared(proc: object) -> dict[str, object]:
    first = next(proc.events(timeout=60))  # type: ignore[attr-defined]
    assert first["event"] == "shared", first
    return dict(first)


def test_text_from_the_command_line_is_printed_and_leaves_no_file(tmp_path: Path) -> None:
    text = "door code 4711\nsecond line\ttab"
    sharer = start(["share", "--text", text, "--json", "--listen", f"/ip4/127.0.0.1/tcp/{free_port()}"], tmp_path / "s")
    try:
        code = _shared(sharer)["code"]
        out = tmp_path / "out"
        res = run(["get", str(code), "-o", str(out / "sub")], tmp_path / "rx")
        assert res.returncode == 0, res.stderr
        assert res.stdout == text + "\n"
        assert not out.exists()  # printed, not stored: not even the -o directories it made (a review)
        assert "[y/N]" not in res.stderr and "Receiving" not in res.stderr
        out.mkdir()
        (out / "mine.txt").write_text("kept")
        res_json = run(["get", str(code), "-o", str(out), "--json"], tmp_path / "rx")
        assert os.listdir(out) == ["mine.txt"]  # a directory that was there stays as it was
        events = [json.loads(line) for line in res_json.stdout.splitlines()]
        assert {"event": "text", "text": text} in events
    finally:
        sharer.close()


def test_text_from_stdin_and_control_characters_are_not_passed_to_the_terminal(tmp_path: Path) -> None:
    sharer = start(["share", "--text", "-", "--json", "--listen", f"/ip4/127.0.0.1/tcp/{free_port()}"], tmp_path / "s")
    try:
        sharer.send("https://example.org/x \x1b]0;pwned\x07 ok")
        sharer.close_stdin()
        code = _shared(sharer)["code"]
        p = PtyProc(["get", str(code), "-o", str(tmp_path / "out")], tmp_path / "rx")
        try:
            assert p.wait() == 0, p.output
        finally:
            p.close()
        assert "https://example.org/x \ufffd]0;pwned\ufffd ok" in p.output
        assert "\x1b]0" not in p.output
    finally:
        sharer.close()


def test_share_needs_paths_or_text(tmp_path: Path) -> None:
    res = run(["share"], tmp_path / "h")
    assert res.returncode == 2 and "PATH... or --text" in res.stderr
    assert "not both" not in res.stderr  # nothing was given: "not both" read as a riddle
    (tmp_path / "f").write_text("x")
    res = run(["share", str(tmp_path / "f"), "--text", "x"], tmp_path / "h")
    assert res.returncode == 2 and "not both" in res.stderr


def test_a_text_share_never_touches_the_receivers_files(tmp_path: Path) -> None:
    """A sharer names its text's file, and a text share is taken unasked: a
    hostile one names a file the receiver has. It is received elsewhere, so
    the receiver's file is neither printed, overwritten, renamed beside nor
    deleted, whatever --rename/--overwrite say (each case lost the file);
    and where it was received is gone afterwards."""
    from p2pshare.node.textshare import TEXT_MARK

    src = tmp_path / "src"
    src.mkdir()
    (src / "thesis.docx").write_bytes(b"hello from the sharer\n")
    args = ["share", str(src / "thesis.docx"), "--description", TEXT_MARK, "--json"]
    sharer = start([*args, "--listen", f"/ip4/127.0.0.1/tcp/{free_port()}"], tmp_path / "s")
    try:
        code = str(_shared(sharer)["code"])
        for i, (mine, flags) in enumerate(
            [
                (b"MY PRECIOUS THESIS\n", ["--rename"]),
                (b"MY PRECIOUS THESIS\n", ["--overwrite"]),
                (b"hello from the sharer\n", []),  # identical: counted as already here
            ]
        ):
            out = tmp_path / f"out{i}"
            out.mkdir()
            (out / "thesis.docx").write_bytes(mine)
            tmp = tmp_path / f"tmp{i}"
            tmp.mkdir()
            res = run(["get", code, "-o", str(out), *flags], tmp_path / "rx", prefix=["env", f"TMPDIR={tmp}"])
            assert res.returncode == 0, res.stderr
            assert os.listdir(tmp) == [], flags
            assert res.stdout == "hello from the sharer\n", flags
            assert sorted(os.listdir(out)) == ["thesis.docx"], flags
            assert (out / "thesis.docx").read_bytes() == mine, flags
    finally:
        sharer.close()


def test_endless_or_non_utf8_text_on_stdin_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """``yes | share --text -`` read everything before checking the limit
    (3.3 GB of memory in seconds); bytes that are not UTF-8 were an
    internal error, exit 1 (a usability review, stop 44)."""
    import subprocess

    from tests.cli.helpers import CLI, env_for

    def share_stdin(feed: str) -> subprocess.CompletedProcess[str]:
        listen = f"/ip4/127.0.0.1/tcp/{free_port()}"
        # At most 4 GB of address space: the old reader ran to 3.3 GB and beyond.
        cmd = f"ulimit -v 4000000; {feed} | {' '.join(CLI)} share --text - --listen {listen}"
        return subprocess.run(
            ["bash", "-c", cmd], capture_output=True, text=True, env=env_for(tmp_path / "s"), timeout=60
        )

    res = share_stdin("yes")
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines()[-1] == "p2pshare: error: the text is over 1048576 bytes; share it as a file"
    res = share_stdin(r"printf 'caf\xe9'")
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines()[-1] == "p2pshare: error: the text is not UTF-8; share it as a file"
