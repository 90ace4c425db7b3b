"""Errors and logs a person can read, through the real CLI."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.helpers import free_port, run
from tests.cli.test_exit_codes import a_code


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("p2pshare: error:")]


def test_a_gone_sharer_is_one_short_line_and_v_adds_the_detail(tmp_path: Path) -> None:
    code = a_code(free_port())  # nobody listens there
    res = run(["get", code, "-o", str(tmp_path / "out"), "--timeout", "3"], tmp_path / "h")
    assert res.returncode == 3, res.stderr
    [line] = _errors(res.stderr)
    assert "could not reach the sharer" in line and "try again" in line and "-v for details" in line
    assert "Exception" not in line and len(line) < 250, line
    assert "Looking for the sharer" in res.stderr  # waiting was not silent
    res_v = run(["get", code, "-o", str(tmp_path / "out"), "--timeout", "3", "-v"], tmp_path / "h")
    assert res_v.returncode == 3
    [detail] = _errors(res_v.stderr)
    assert "127.0.0.1" in detail  # -v after the subcommand: the whole chain


def test_vv_after_the_subcommand_shows_our_debug_not_dependencies(tmp_path: Path) -> None:
    code = a_code(free_port())
    res = run(["get", code, "-o", str(tmp_path / "out"), "--timeout", "2", "-vv"], tmp_path / "h")
    assert res.returncode == 3
    assert "DEBUG p2pshare." in res.stderr, res.stderr
    # Each log line says when (ms since start-up): where a slow first byte went.
    assert re.search(r"^p2pshare: t\+\d+ms DEBUG p2pshare\.", res.stderr, re.M), res.stderr
    assert "multiaddr" not in "".join(line for line in res.stderr.splitlines() if " DEBUG " in line)


def test_a_quoted_code_is_accepted(tmp_path: Path) -> None:
    res = run(["code", "show", f"'<{a_code(4001)}>'."], tmp_path / "h")
    assert res.returncode == 0, res.stderr
    assert '"format": "v1"' in res.stdout


def test_the_tag_in_parentheses_or_a_cut_off_code_says_so(tmp_path: Path) -> None:
    # `share` prints "(code H9F9WYXCWJ6R)": people sent that (issue 11).
    res = run(["get", "H9F9WYXCWJ6R", "-o", str(tmp_path / "out")], tmp_path / "h")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    [line] = _errors(res.stderr)
    assert "is the share's tag, not a code" in line and "1234-word-word-word" in line, line
    half = a_code(free_port())[:60]
    res = run(["get", half, "-o", str(tmp_path / "out")], tmp_path / "h")
    assert res.returncode == 2
    [line] = _errors(res.stderr)
    assert "cut off after 60 characters" in line, line
    assert not (tmp_path / "out").exists()


def test_characters_after_a_code_are_named_not_called_cut_off(tmp_path: Path) -> None:
    # "CODEx", or a word that joined the code: the code is whole, with extra characters.
    code = a_code(free_port())
    res = run(["get", code + "xy", "-o", str(tmp_path / "out")], tmp_path / "h")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    [line] = _errors(res.stderr)
    assert f"2 characters too many at the end: the code itself ends after {len(code)} characters" in line, line
    assert "cut off" not in line and "truncated" not in line
    assert not (tmp_path / "out").exists()
