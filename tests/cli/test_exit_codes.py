"""Every documented exit code, each with one clear line and no traceback."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from p2pshare import sharecode
from tests.cli.helpers import free_port, loopback_relay, run, start, write_random
from tests.harness import file_modes_bind


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


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["get", "--json"], "the following arguments are required: CODE (see p2pshare get --help)"),
        (["share", "--json"], "share needs what to share: PATH... or --text TEXT (see p2pshare share --help)"),
        (
            ["frobnicate"],
            "invalid choice: 'frobnicate' (choose from 'share', 'get', 'code', 'relay', 'node') (see p2pshare --help)",
        ),
        # argparse says this from the top-level parser; the command's help lists its flags
        (["relay", "--bogus"], "unrecognized arguments: --bogus (see p2pshare relay --help)"),
        # "the following arguments are required: command" named no command to type
        (["--json"], "say what to do: share, get, code, node or relay (see p2pshare --help)"),
        (["code", "--json"], "say what to do: show CODE (see p2pshare code --help)"),
    ],
)
def test_usage_errors_are_one_line_and_an_event_with_json(tmp_path: Path, args: list[str], fragment: str) -> None:
    """Usage errors read as every other error (``p2pshare: error: …``, not
    argparse's ``p2pshare get: error: …``), and a --json caller gets its
    error event on stdout as for any other failure."""
    res = run(args, tmp_path / "h")
    assert res.returncode == 2
    assert_one_line_error(res.stderr, fragment)
    if "--json" in args:
        event = json.loads(res.stdout.strip())
        assert event == {
            "event": "error",
            "message": res.stderr.strip().removeprefix("p2pshare: error: "),
            "exit_code": 2,
        }
    else:
        assert res.stdout == ""


def test_a_listen_address_that_cannot_be_bound_says_why_exit_2(tmp_path: Path) -> None:
    # py-libp2p drops a failed listener silently; the person hears the kernel's reason.
    import socket

    (tmp_path / "f.txt").write_text("x")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run(["share", str(tmp_path / "f.txt"), "--listen", f"/ip4/127.0.0.1/tcp/{port}"], tmp_path / "h")
    assert res.returncode == 2
    assert_one_line_error(
        res.stderr, f"cannot listen on /ip4/127.0.0.1/tcp/{port}: Address already in use", "or /tcp/0 for any"
    )
    res = run(["get", a_code(4001), "-o", str(tmp_path / "o"), "--listen", "/ip4/192.0.2.1/tcp/0"], tmp_path / "h")
    assert res.returncode == 2
    assert_one_line_error(res.stderr, "cannot listen on /ip4/192.0.2.1/tcp/0: Cannot assign requested address")
    res = run(["relay", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1"], tmp_path / "h")  # was exit 1, "internal error"
    assert res.returncode == 2
    assert_one_line_error(res.stderr, "cannot listen on /ip4/127.0.0.1/udp/0/quic-v1: only TCP listen addresses")


def test_a_port_another_p2pshare_listens_on_is_refused_exit_2(tmp_path: Path) -> None:
    """Both listen with SO_REUSEPORT (hole punching needs it): a second
    relay on a running relay's port listened too, and the kernel dealt the
    incoming connections to either at random. Found by a usability review."""
    relay, _peer, addr = loopback_relay(tmp_path / "r1")
    try:
        res = run(["relay", "--listen", addr], tmp_path / "r2")
        assert res.returncode == 2, res.stderr
        assert_one_line_error(res.stderr, f"cannot listen on {addr}: Address already in use")
        assert relay.poll() is None  # the first one still serves
    finally:
        relay.close()
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--description", "red \x1b[31m", "--description contains a control character or invalid Unicode"),
        ("--name", "two\nlines", "--name contains a control character or invalid Unicode"),
        ("--sharer", "x" * 256, "--sharer is longer than 255 characters"),
    ],
)
def test_texts_shown_to_receivers_are_checked_before_the_code(tmp_path: Path, flag: str, value: str, said: str) -> None:
    """A bad --description was refused only after the code was printed, and
    the share then ended. Found by a usability review."""
    (tmp_path / "f.txt").write_text("x")
    res = run(["share", str(tmp_path / "f.txt"), "--listen", "/ip4/127.0.0.1/tcp/0", flag, value], tmp_path / "h")
    assert res.returncode == 2, res.stderr
    assert res.stdout == ""
    assert_one_line_error(res.stderr, said)


def test_missing_path_is_exit_2(tmp_path: Path) -> None:
    res = run(["share", str(tmp_path / "nope")], tmp_path / "h")
    assert res.returncode == 2
    assert_one_line_error(res.stderr, "no such file")


def test_too_many_entries_is_exit_2_before_any_code(tmp_path: Path) -> None:
    """A share over the manifest's entry limit is refused by the scan, before
    a code is printed -- not after every file was hashed."""
    top = tmp_path / "many"
    for d in range(132):
        sub = top / f"d{d}"
        sub.mkdir(parents=True)
        for i in range(1000):
            (sub / f"{i}").touch()
    res = run(["share", "--no-mdns", str(top)], tmp_path / "home")
    assert res.returncode == 2 and res.stdout == ""  # no code printed
    assert_one_line_error(res.stderr, "132,000 files and 133 folders", "131,072 entries")


def test_usage_error_is_exit_2(tmp_path: Path) -> None:
    res = run(["get"], tmp_path / "h")
    assert res.returncode == 2
    res = run(["get", "x", "--timeout", "-1"], tmp_path / "h")
    assert res.returncode == 2
    res = run(["get", "x", "--timeout", "nan"], tmp_path / "h")  # was "must be greater than 0"
    assert res.returncode == 2
    assert_one_line_error(res.stderr, "--timeout: not a number: 'nan'")


def test_unwritable_output_is_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run(["get", a_code(free_port()), "-o", str(blocker / "sub")], tmp_path / "h")
    assert res.returncode == 2
    assert_one_line_error(res.stderr, "output directory", "a part of its path is a file, not a directory")
    res = run(["get", a_code(free_port()), "-o", str(blocker)], tmp_path / "h")  # was "File exists"
    assert res.returncode == 2
    assert_one_line_error(res.stderr, f"output {blocker} exists and is not a directory; choose a directory with -o")


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
        # Taken by get's own signal receiver (the resume hint), not by a
        # KeyboardInterrupt trio raised in whichever task ran at that instant.
        assert "interrupted; nothing was received" in proc.stderr_tail()
        assert "Traceback" not in proc.stderr_tail()
    finally:
        proc.close()


def test_sigterm_during_get_is_exit_143(tmp_path: Path) -> None:
    args = ["get", a_code(free_port()), "-o", str(tmp_path / "o"), "--timeout", "60", "--json"]
    proc = start(args, tmp_path / "h")
    try:
        time.sleep(3)  # past start-up, dialling a port nobody listens on
        proc.kill(signal.SIGTERM)
        assert proc.wait(20) == 128 + signal.SIGTERM
        error = json.loads(proc.lines[-1])
        assert error["event"] == "error" and error["exit_code"] == 143 and "terminated" in error["message"]
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


# --- Bad local files: each is exit 2 with one line, never "internal error". ---


def _identity_commands(tmp_path: Path, identity: Path) -> dict[str, list[str]]:
    """Every command that takes ``--identity``, pointed at ``identity``."""
    shared = tmp_path / "shared.txt"
    shared.write_text("hello")
    loopback = ["--listen", "/ip4/127.0.0.1/tcp/0", "--identity", str(identity)]
    return {
        "share": ["share", str(shared), *loopback],
        "get": ["get", a_code(free_port()), "-o", str(tmp_path / "out"), "--timeout", "5", *loopback],
        "node": ["node", *loopback],
        "relay": ["relay", *loopback],
    }


@pytest.mark.parametrize("command", ["share", "get", "node", "relay"])
def test_corrupt_identity_is_exit_2(tmp_path: Path, command: str) -> None:
    identity = tmp_path / "identity.key"
    identity.write_bytes(b"this is not a key\n")
    identity.chmod(0o644)  # the permission warning must not add a line to a corrupt file's error
    res = run(_identity_commands(tmp_path, identity)[command], tmp_path / "h", timeout=60)
    assert res.returncode == 2, res.stderr
    assert_one_line_error(res.stderr, str(identity), "corrupt")
    assert "internal error" not in res.stderr and "warning" not in res.stderr.lower()


@pytest.mark.parametrize("command", ["share", "relay"])
def test_identity_that_is_a_directory_is_exit_2(tmp_path: Path, command: str) -> None:
    identity = tmp_path / "keys"
    identity.mkdir()
    res = run(_identity_commands(tmp_path, identity)[command], tmp_path / "h", timeout=60)
    assert res.returncode == 2, res.stderr
    assert_one_line_error(res.stderr, str(identity), "not a regular file")


def test_identity_below_a_file_is_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    identity = blocker / "identity.key"
    res = run(_identity_commands(tmp_path, identity)["node"], tmp_path / "h", timeout=60)
    assert res.returncode == 2, res.stderr
    assert_one_line_error(res.stderr, "identity file", str(identity))


@pytest.mark.parametrize("command", ["share", "get", "node", "relay"])
def test_identity_in_a_mistyped_directory_is_exit_2_and_makes_nothing(tmp_path: Path, command: str) -> None:
    """Before, the directory was made, with a new identity in it: the command
    ran as an unknown peer ID and said nothing of it."""
    identity = tmp_path / "typo" / "dir" / "identity.key"
    res = run(_identity_commands(tmp_path, identity)[command], tmp_path / "h", timeout=60)
    assert res.returncode == 2, res.stderr
    assert_one_line_error(res.stderr, f"identity file {identity}: no such directory: {identity.parent}")
    assert not (tmp_path / "typo").exists()


def test_identity_in_a_directory_we_may_not_search_is_exit_2(tmp_path: Path) -> None:
    """The --identity check met EACCES there: a traceback (exit 1). Found by review."""
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "identity.key").write_bytes(b"\x00" * 68)
    _identity_in_locked_directory_is_exit_2(tmp_path, keys, 0, "get")


def test_unreadable_identity_is_exit_2(tmp_path: Path) -> None:
    identity = tmp_path / "identity.key"
    identity.write_bytes(b"\x00" * 68)
    identity.chmod(0)
    res = run(_identity_commands(tmp_path, identity)["share"], tmp_path / "h", timeout=60, prefix=file_modes_bind())
    assert res.returncode == 2, res.stderr
    assert_one_line_error(res.stderr, "cannot read identity file", str(identity))


def test_identity_in_unwritable_directory_is_exit_2(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    _identity_in_locked_directory_is_exit_2(tmp_path, keys, 0o500, "node")


def _identity_in_locked_directory_is_exit_2(tmp_path: Path, keys: Path, mode: int, command: str) -> None:
    """``command`` with ``keys/identity.key``, ``keys`` at ``mode``, run without root's powers."""
    keys.chmod(mode)
    try:
        res = run(
            _identity_commands(tmp_path, keys / "identity.key")[command],
            tmp_path / "h",
            timeout=60,
            prefix=file_modes_bind(),
        )
    finally:
        keys.chmod(0o700)
    assert res.returncode == 2, res.stderr
    assert_one_line_error(res.stderr, "identity file")


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ("bootstrap = [", "cannot read"),  # not TOML
        ("bootstrap = 5", "'bootstrap' must be a list"),
        ("default_bootstrap = 'yes'", "'default_bootstrap' must be true or false"),
        ("relays = ['/ip4/127.0.0.1/tcp/4001']", "it must end in /p2p/<peer id>"),
        ("bootstrap = ['127.0.0.1:4001']", "not a multiaddr"),
        (b"\xff\xfe", "cannot read"),  # not UTF-8
    ],
)
def test_corrupt_config_is_exit_2(tmp_path: Path, config: str | bytes, fragment: str) -> None:
    home = tmp_path / "h"
    home.mkdir()
    path = home / "config.toml"
    if isinstance(config, bytes):
        path.write_bytes(config)
    else:
        path.write_text(config)
    for command in ("get", "node"):
        args = _identity_commands(tmp_path, tmp_path / "fresh.key")[command]
        res = run(args, home, timeout=60)
        assert res.returncode == 2, (command, res.stderr)
        assert_one_line_error(res.stderr, "config.toml", fragment)


def test_corrupt_share_record_is_replaced(tmp_path: Path, sharer) -> None:  # type: ignore[no-untyped-def]
    """A share record that is not ours to trust gives a new code, not an error."""
    src = tmp_path / "src.bin"
    write_random(src, 1000)
    home = tmp_path / "sharer-home"
    proc, first = sharer(src, home=home)
    proc.kill(signal.SIGINT)
    assert proc.wait(20) == 0
    records = list((home / "shares").glob("*.json"))
    assert records
    for record in records:
        record.write_text('{"key": "not base64!", "human_code": 7')
    _, again = sharer(src, home=home)
    assert again["code"] != first["code"]
    assert all(json.loads(r.read_text())["human_code"] == again["share_code"] for r in records)


def test_unwritable_share_record_is_exit_2(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    write_random(src, 1000)
    home = tmp_path / "h"
    first = start(["share", str(src), "--json", "--listen", "/ip4/127.0.0.1/tcp/0"], home)
    try:
        assert json.loads(first.readline(60) or "{}").get("event") == "shared"
        first.kill(signal.SIGINT)
        assert first.wait(20) == 0
    finally:
        first.close()
    for record in (home / "shares").glob("*.json"):
        record.unlink()
        record.mkdir()  # in the way of the record's file
    res = run(["share", str(src), "--listen", "/ip4/127.0.0.1/tcp/0"], home, timeout=60)
    assert res.returncode == 2, res.stderr
    assert_one_line_error(res.stderr, "cannot save the share record")


def test_the_command_line_exits_without_the_interpreter_teardown(tmp_path: Path) -> None:
    """``entry`` ends the process with ``os._exit`` once the command is done:
    output flushed, exit code kept, no teardown (an atexit hook never runs)."""
    import subprocess
    import sys

    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stderr.write('TEARDOWN RAN'))\n"
        "from p2pshare.__main__ import entry\n"
        "sys.argv = ['p2pshare', *sys.argv[1:]]\n"
        "entry()\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "P2PSHARE_NO_DEFAULT_BOOTSTRAP": "1"}
    ok = subprocess.run(
        [sys.executable, "-c", script, "code", "show", a_code(4001)], capture_output=True, text=True, env=env
    )
    assert ok.returncode == 0 and "TEARDOWN" not in ok.stderr, ok.stderr
    assert json.loads(ok.stdout)["peer_id"].startswith("12D3KooW")  # the whole document, flushed into a pipe
    bad = subprocess.run(
        [sys.executable, "-c", script, "code", "show", "garbage"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and "TEARDOWN" not in bad.stderr
    assert_one_line_error(bad.stderr, "bad share code")


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--relay", "foo"], "--relay 'foo': not a multiaddr"),
        (["--relay", "/ip4/127.0.0.1/tcp/4001"], "--relay '/ip4/127.0.0.1/tcp/4001': it must end in /p2p/<peer id>"),
        (["--relay", "/ip4/127.0.0.1/tcp/4001/p2p/notapeer"], "bad peer ID"),
        (["--bootstrap", "127.0.0.1:4001"], "--bootstrap '127.0.0.1:4001': not a multiaddr"),
    ],
)
def test_a_relay_or_bootstrap_address_that_names_no_peer_is_exit_2(tmp_path: Path, flags: list[str], said: str) -> None:
    """A bad --relay was an internal error (exit 1, "bad AutoNAT server
    address"), a bad --bootstrap was dropped without a word. Found by a
    usability review."""
    (tmp_path / "f.txt").write_text("x")
    for args in (["share", str(tmp_path / "f.txt")], ["node"]):
        res = run([*args, "--listen", "/ip4/127.0.0.1/tcp/0", *flags], tmp_path / "h", timeout=60)
        assert res.returncode == 2, (args, res.stderr)
        assert_one_line_error(res.stderr, said)


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--announce", "foo"], "argument --announce: not a TCP address clients can dial: 'foo'"),
        (["--stun-ip", "foo"], "argument --stun-ip: not an IP address: 'foo'"),
    ],
)
def test_relay_address_flags_are_checked_exit_2(tmp_path: Path, flags: list[str], said: str) -> None:
    """``--announce foo`` was printed as the relay's address and served;
    ``--stun-ip foo`` warned of busy ports. Found by a usability review."""
    res = run(["relay", "--listen", "/ip4/127.0.0.1/tcp/0", *flags], tmp_path / "h", timeout=60)
    assert res.returncode == 2, res.stderr
    assert_one_line_error(res.stderr, said)


def test_a_relay_checks_its_bootstrap_before_it_starts(tmp_path: Path) -> None:
    """The relay read --bootstrap after it listened and opened its STUN ports
    (their line came before the error) and after it made its identity."""
    res = run(
        ["relay", "--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", "127.0.0.1:4001"], tmp_path / "h", timeout=60
    )
    assert res.returncode == 2, res.stderr
    assert_one_line_error(res.stderr, "--bootstrap '127.0.0.1:4001': not a multiaddr")
    assert "STUN" not in res.stderr + res.stdout
    assert not list((tmp_path / "h").rglob("*.key"))


@pytest.mark.parametrize("json_mode", [False, True])
def test_ctrl_c_while_the_command_line_imports_is_one_line_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], json_mode: bool
) -> None:
    """A Ctrl-C in the first ~0.15 s (the imports, before ``main`` handles
    it) printed a 20-line traceback. Found by a usability review. With
    ``--json`` there was no ``error`` event on stdout (stop 41's review)."""
    import builtins
    import json
    import sys

    import p2pshare.__main__ as entry_module

    real_import = builtins.__import__

    def interrupted_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "p2pshare.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    def exit_now(code: int) -> None:
        raise SystemExit(code)

    monkeypatch.setattr(builtins, "__import__", interrupted_import)
    monkeypatch.setattr(entry_module, "exit_now", exit_now)
    monkeypatch.setattr(sys, "argv", ["p2pshare", "get", "CODE", *(["--json"] if json_mode else [])])
    with pytest.raises(SystemExit) as ended:
        entry_module.entry()
    assert ended.value.code == 130
    out, err = capsys.readouterr()
    assert err == "p2pshare: error: interrupted\n"
    events = [json.loads(line) for line in out.splitlines()]
    assert events == ([{"event": "error", "message": "interrupted", "exit_code": 130}] if json_mode else [])


def test_a_path_that_starts_with_a_dash_gets_a_hint(tmp_path: Path) -> None:
    """``share -dash.txt`` said only "unrecognized arguments". Found by a usability review."""
    import subprocess

    from tests.cli.helpers import CLI, env_for

    (tmp_path / "-dash.txt").write_text("x")
    res = subprocess.run(
        [*CLI, "share", "-dash.txt"],
        cwd=tmp_path,
        env=env_for(tmp_path / "h"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2, res.stderr
    assert_one_line_error(res.stderr, "unrecognized arguments: -dash.txt; a path that starts with -: put -- before it")


@pytest.mark.parametrize("command", ["share", "node", "relay"])
def test_a_data_directory_that_is_a_file_is_named_as_such(tmp_path: Path, command: str) -> None:
    """It said "cannot read identity file …/identity.key: Not a directory",
    naming neither the data directory nor P2PSHARE_HOME (a usability review)."""
    home = tmp_path / "afile"
    home.write_text("x")
    (tmp_path / "f.txt").write_text("x")
    args = {"share": ["share", str(tmp_path / "f.txt")], "node": ["node"], "relay": ["relay"]}[command]
    res = run([*args, "--listen", "/ip4/127.0.0.1/tcp/0"], home)  # run() sets P2PSHARE_HOME=home
    assert res.returncode == 2, res.stderr
    assert_one_line_error(res.stderr, "a part of its path is a file, not a directory", f"set by P2PSHARE_HOME={home}")
