"""The small things people expect: help examples, config typos, code reuse said."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import Proc, free_port, run, start
from tests.cli.test_exit_codes import a_code

Sharer = Callable[..., tuple[Proc, dict[str, Any]]]


@pytest.mark.parametrize("command", [[], ["share"], ["get"], ["code", "show"], ["node"], ["relay"]])
def test_help_has_examples(tmp_path: Path, command: list[str]) -> None:
    res = run([*command, "--help"], tmp_path / "h")
    assert res.returncode == 0, res.stderr
    assert "examples:" in res.stdout or "example:" in res.stdout, res.stdout


def test_unknown_config_key_is_warned_about(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "config.toml").write_text('relay = ["/ip4/127.0.0.1/tcp/1"]\ncolour = "blue"\n')
    res = run(["get", a_code(free_port()), "-o", str(tmp_path / "o"), "--timeout", "1"], home)
    assert res.returncode == 3, res.stderr
    assert "unknown key 'relay' is ignored (did you mean 'relays'?)" in res.stderr, res.stderr
    assert "unknown key 'colour' is ignored (known keys:" in res.stderr


def test_a_relay_warns_about_unknown_config_keys_too(tmp_path: Path) -> None:
    """``relay`` read the config file and never said what it ignored. Found by review."""
    home = tmp_path / "h"
    home.mkdir()
    (home / "config.toml").write_text('colour = "blue"\n')
    relay = start(["relay", "--listen", "/ip4/127.0.0.1/tcp/0", "--json"], home)
    try:
        events = relay.wait_for("warning", timeout=60)
        assert events[0]["event"] == "relay", events
        while "unknown key" not in events[-1]["message"]:  # others first (busy STUN ports)
            events += relay.wait_for("warning", timeout=60)
        assert "unknown key 'colour' is ignored" in events[-1]["message"], events
    finally:
        relay.close()


def test_share_says_when_it_reuses_an_earlier_code(tmp_path: Path, sharer: Sharer) -> None:
    src = tmp_path / "doc.txt"
    src.write_text("x")
    home = tmp_path / "sh"
    first, shared = sharer(src, home=home)
    assert shared["reused"] is False
    first.close()
    _, again = sharer(src, home=home)
    assert again["reused"] is True and again["share_code"] == shared["share_code"]
    _, fresh = sharer(src, home=home, extra=("--new-code",))
    assert fresh["reused"] is False and fresh["share_code"] != shared["share_code"]


def test_share_records_not_used_for_90_days_are_deleted(tmp_path: Path, sharer: Sharer) -> None:
    """Each share's record (with its key) stayed in the data directory for
    ever (a long-uptime review, stop 43). The next share deletes those not
    written for 90 days and leftovers of cut-short writes; the rest stay."""
    import os
    import time

    home = tmp_path / "sh"
    old, recent = tmp_path / "old.txt", tmp_path / "recent.txt"
    old.write_text("o")
    recent.write_text("r")
    for src in (old, recent):
        proc, _ = sharer(src, home=home)
        proc.close()
    records = {p.name: p for p in (home / "shares").glob("*.json")}
    assert len(records) == 2
    months = time.time() - 91 * 86400
    stale = next(iter(records.values()))
    os.utime(stale, (months, months))
    leftover = home / "shares" / "x.json.1234abcd.tmp"
    leftover.write_text("{")
    os.utime(leftover, (time.time() - 7200,) * 2)
    third = tmp_path / "third.txt"
    third.write_text("t")
    sharer(third, home=home)
    left = {p.name for p in (home / "shares").iterdir()}
    assert stale.name not in left and leftover.name not in left
    assert len(left) == 2, left  # the other record and the third share's


def test_share_qr_shows_the_code_as_a_qr_code(tmp_path: Path) -> None:
    import io

    import segno

    from tests.cli.ptyproc import PtyProc

    src = tmp_path / "doc.txt"
    src.write_text("x")
    p = PtyProc(["share", str(src), "--qr", "--listen", f"/ip4/127.0.0.1/tcp/{free_port()}"], tmp_path / "sh", 120)
    try:
        shown = p.read_until("Ctrl-C stops sharing", timeout=60).replace("\r\n", "\n")
    finally:
        p.close()
    code = next(line.strip() for line in shown.splitlines() if line.startswith("ey"))
    expected = io.StringIO()
    segno.make(code, error="l").terminal(out=expected, compact=True, border=2)
    assert expected.getvalue().rstrip("\n") in shown  # exactly the code's QR, drawn whole


def test_a_broken_or_looping_symlink_is_named_as_such(tmp_path: Path) -> None:
    """Both said "cannot read …: permission denied" (a usability review, stop 44)."""
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing-here")
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    res = run(["share", str(tmp_path / "dangling")], tmp_path / "h")
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"p2pshare: error: cannot share {tmp_path / 'dangling'}: a symbolic link to nothing ({tmp_path / 'nothing-here'})"
    )
    res = run(["share", str(tmp_path / "loop-a")], tmp_path / "h")
    assert res.returncode == 2
    assert res.stderr.strip() == f"p2pshare: error: cannot share {tmp_path / 'loop-a'}: a loop of symbolic links"


def test_an_unreadable_file_in_a_shared_folder_is_skipped_before_the_code(tmp_path: Path, procs: list[Proc]) -> None:
    """The code was printed, then hashing the file ended the share ("cannot
    read …: Permission denied", exit 2; a usability review, stop 44). It is
    skipped with a warning, like a special file, and the rest is shared.
    Root here runs without its file capabilities (``setpriv``)."""
    import os

    from tests.cli.helpers import CLI, ROOT, env_for, tree_digest
    from tests.harness import file_modes_bind

    prefix = file_modes_bind()
    top = tmp_path / "d"
    top.mkdir()
    (top / "ok.txt").write_text("fine\n")
    (top / "secret.txt").write_text("no\n")
    os.chmod(top / "secret.txt", 0)
    listen = f"/ip4/127.0.0.1/tcp/{free_port()}"
    home = tmp_path / "sh"
    p = Proc(
        [*prefix, *CLI, "share", str(top), "--json", "--listen", listen], name="share", env=env_for(home), cwd=ROOT
    )
    procs.append(p)
    events = p.events_until("ready", 60)
    assert events[0]["event"] == "shared"
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert f"skipped {top / 'secret.txt'}: cannot read it (permission denied)" in warnings, events
    res = run(["get", events[0]["code"], "-o", str(tmp_path / "out"), "--yes"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert tree_digest(tmp_path / "out" / "d") == {"ok.txt": tree_digest(top)["ok.txt"]}
    assert p.poll() is None  # still sharing


def test_a_second_share_of_the_same_paths_at_once_leaves_the_first_code_working(tmp_path: Path, sharer: Sharer) -> None:
    """The second ran as another peer (the first holds its identity) and
    rewrote the share record with that peer: once both stopped, sharing
    again gave the second's code, and the first code, handed out earlier,
    never worked again (a usability review, stop 44)."""
    from p2pshare.node.cmd_get import parse_any_code

    src = tmp_path / "twice.txt"
    src.write_text("x")
    home = tmp_path / "sh"
    first, one = sharer(src, home=home)
    second, two = sharer(src, home=home)
    peer = parse_any_code(one["code"]).peer_id
    assert parse_any_code(two["code"]).peer_id != peer  # a stand-in, with a warning
    second.close()
    first.close()
    _, again = sharer(src, home=home)
    assert again["reused"] is True and parse_any_code(again["code"]).peer_id == peer


def test_timeout_takes_durations_and_refuses_infinity(tmp_path: Path) -> None:
    """``--timeout inf`` (or 1e308) was taken and printed as "up to inf s" or
    a 309-digit number; ``5s`` was refused while ``--code-ttl`` takes it (a
    usability review, stop 44)."""
    from p2pshare._cli_args import positive_float

    assert positive_float("5s") == 5.0 and positive_float("10m") == 600.0 and positive_float("2.5") == 2.5
    for bad in ("inf", "1e308"):
        res = run(["get", "AAAA", "--timeout", bad], tmp_path / "h")
        assert res.returncode == 2
        assert res.stderr.strip() == (
            "p2pshare: error: argument --timeout: at most 604800 s (7 days) (see p2pshare get --help)"
        )


def test_an_option_of_the_command_given_before_it_is_pointed_after_it(tmp_path: Path) -> None:
    res = run(["--json", "get", "X"], tmp_path / "h")
    assert res.returncode == 2
    assert "--json goes after the command: p2pshare get --json …" in res.stderr
    assert "goes after the command" in json.loads(res.stdout)["message"]  # --json was asked for: an error event
