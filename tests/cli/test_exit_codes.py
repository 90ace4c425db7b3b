"""Every documented exit code, each with one clear line and no traceback."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from p2pshare import sharecode
from tests.cli.helpers import free_port, run, start, write_random


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    lines = [line for line in stderr.splitlines() if line.startswith("p2pshare: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for frag in fragments:
        assert frag in lines[0], lines[0]


def a_code(port: int, key: bytes | None = None) -> str:
    return sharecode.ShareCode(
        peer_id="12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
        addresses=(f"/ip4/127.0.0.1/tcp/{port}",),
        encryption_key=key or os.urandom(32),
        share_code="ABCDEFGH2345",
    ).encode()


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("not a code at all!", "bad share code"),
        ("eyJmb28iOiAxfQ", "missing"),  # {"foo": 1}
        ("ABCD1234:zz:127.0.0.1:80", "bad share code"),
    ],
)
def test_malformed_code_is_exit_2(tmp_path: Path, code: str, fragment: str) -> None:
    res = run(["get", code, "-o", str(tmp_path)], tmp_path / "h")
    assert res.returncode == 2
    assert_one_line_error(res.stderr, fragment)


def test_malformed_code_json_error_event(tmp_path: Path) -> None:
    res = run(["get", "%%%", "--json"], tmp_path / "h")
    assert res.returncode == 2
    event = json.loads(res.stdout.strip())
    assert event["event"] == "error" and event["exit_code"] == 2 and event["message"]


def test_missing_path_is_exit_2(tmp_path: Path) -> None:
    res = run(["share", str(tmp_path / "nope")], tmp_path / "h")
    assert res.returncode == 2
    assert_one_line_error(res.stderr, "no such file")


def test_usage_error_is_exit_2(tmp_path: Path) -> None:
    res = run(["get"], tmp_path / "h")
    assert res.returncode == 2
    res = run(["get", "x", "--timeout", "-1"], tmp_path / "h")
    assert res.returncode == 2


def test_unwritable_output_is_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run(["get", a_code(free_port()), "-o", str(blocker / "sub")], tmp_path / "h")
    assert res.returncode == 2
    assert_one_line_error(res.stderr, "output directory")


def test_unreachable_sharer_is_exit_3(tmp_path: Path) -> None:
    t0 = time.monotonic()
    res = run(["get", a_code(free_port()), "-o", str(tmp_path / "o"), "--timeout", "2"], tmp_path / "h")
    assert res.returncode == 3, res.stderr
    assert_one_line_error(res.stderr, "reach")
    assert time.monotonic() - t0 < 30


def test_sigint_during_get_is_exit_130(tmp_path: Path) -> None:
    proc = start(["get", a_code(free_port()), "-o", str(tmp_path / "o"), "--timeout", "60"], tmp_path / "h")
    try:
        time.sleep(3)  # past start-up, dialling a port nobody listens on
        proc.kill(signal.SIGINT)
        assert proc.wait(20) == 130
        assert "Traceback" not in proc.stderr_tail()
    finally:
        proc.close()


def test_refuses_to_overwrite_a_different_file(tmp_path: Path, sharer) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    write_random(src / "a.bin", 4096)
    _, shared = sharer(src / "a.bin")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.bin").write_bytes(b"my own precious data")
    res = run(["get", shared["code"], "-o", str(out)], tmp_path / "rx")
    assert res.returncode == 2, res.stderr
    assert_one_line_error(res.stderr, "a.bin")
    assert (out / "a.bin").read_bytes() == b"my own precious data"


def test_code_show_redacts_the_key(tmp_path: Path) -> None:
    key = os.urandom(32)
    code = a_code(4001, key)
    res = run(["code", "show", code], tmp_path / "h")
    assert res.returncode == 0, res.stderr
    shown = json.loads(res.stdout)
    assert shown["peer_id"].startswith("12D3KooW")
    import base64

    assert base64.b64encode(key).decode() not in res.stdout
    res = run(["code", "show", code, "--reveal-key"], tmp_path / "h")
    assert base64.b64encode(key).decode() in res.stdout
    res = run(["code", "show", "garbage"], tmp_path / "h")
    assert res.returncode == 2
    assert_one_line_error(res.stderr, "bad share code")
