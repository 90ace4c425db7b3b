"""Finding a sharer through the DHT when the code's addresses are useless."""

from __future__ import annotations

import json
from pathlib import Path

from p2pshare import sharecode
from tests.cli.helpers import Proc, free_port, run, tree_digest, write_random
from tests.cli.test_relayed import start_relay


def test_code_without_usable_addresses_is_found_through_the_dht(
    tmp_path: Path,
    procs: list[Proc],
    sharer,  # type: ignore[no-untyped-def]
) -> None:
    boot = start_relay(tmp_path, procs)  # a relay node doubles as a DHT bootstrap node
    src = tmp_path / "src"
    write_random(src / "a.bin", 2 << 20)
    _, shared = sharer(src, extra=("--bootstrap", boot))
    code = sharecode.parse_code(shared["code"])
    assert isinstance(code, sharecode.ShareCode)
    dead = f"/ip4/127.0.0.1/tcp/{free_port()}"
    stale = sharecode.ShareCode(code.peer_id, (dead,), code.encryption_key, code.share_code)
    res = run(
        ["get", stale.encode(), "-o", str(tmp_path / "out"), "--bootstrap", boot, "--json", "--timeout", "30"],
        tmp_path / "rx",
    )
    assert res.returncode == 0, res.stderr
    assert tree_digest(tmp_path / "out" / "src") == tree_digest(src)
    # With no address at all, the provider record alone finds the sharer.
    bare = sharecode.ShareCode(code.peer_id, (), code.encryption_key, code.share_code)
    res = run(
        ["get", bare.encode(), "-o", str(tmp_path / "out2"), "--bootstrap", boot, "--json", "--timeout", "30"],
        tmp_path / "rx",
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[0])["event"] == "connected"


def test_sharer_restarted_on_another_port_is_found_by_peer_id(
    tmp_path: Path,
    procs: list[Proc],
    sharer,  # type: ignore[no-untyped-def]
) -> None:
    boot = start_relay(tmp_path, procs)
    src = tmp_path / "src"
    write_random(src / "a.bin", 1 << 20)
    first, shared = sharer(src, extra=("--bootstrap", boot))
    first.kill()
    first.wait(10)
    _, again = sharer(src, extra=("--bootstrap", boot))  # same paths, same home: same code, new port
    assert again["code"] != shared["code"] and again["share_code"] == shared["share_code"]
    assert again["peer_id"] == shared["peer_id"]
    res = run(
        ["get", shared["code"], "-o", str(tmp_path / "out"), "--bootstrap", boot, "--timeout", "30"], tmp_path / "rx"
    )
    assert res.returncode == 0, res.stderr
    assert tree_digest(tmp_path / "out" / "src") == tree_digest(src)


def test_unknown_share_with_dht_but_no_sharer_is_exit_3(tmp_path: Path, procs: list[Proc]) -> None:
    boot = start_relay(tmp_path, procs)
    import os

    code = sharecode.ShareCode(
        "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA", (), os.urandom(32), sharecode.new_human_code()
    )
    res = run(["get", code.encode(), "-o", str(tmp_path / "o"), "--bootstrap", boot, "--timeout", "5"], tmp_path / "rx")
    assert res.returncode == 3, res.stderr
    assert "Traceback" not in res.stderr
