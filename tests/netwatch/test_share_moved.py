"""``share`` on a machine that moves: the real CLI in a network namespace.

The sharer listens on every interface of a namespace that has only
loopback, so its code names 127.0.0.1. An address added to an interface
(the machine "joined another network") makes it print a code naming the
new address, and a ``get`` with that code, in the namespace, receives the
file through it.
"""

from __future__ import annotations

import signal
from pathlib import Path

from p2pshare.sharecode import parse_code
from tests.cli.helpers import CLI, ROOT, Proc, env_for
from tests.netwatch.conftest import ip

NEW = "100.64.9.3"


def test_a_moved_sharer_prints_a_code_that_names_its_new_address(netns: str, tmp_path: Path) -> None:
    src = tmp_path / "hello.txt"
    src.write_bytes(b"from the new network\n" * 1000)
    in_ns = ["ip", "netns", "exec", netns, *CLI]
    env = env_for(tmp_path / "sh") | {"P2PSHARE_NO_DEFAULT_BOOTSTRAP": "1"}
    share = Proc(
        [*in_ns, "share", str(src), "--json", "--no-mdns", "--listen", "/ip4/0.0.0.0/tcp/0"],
        name="p2pshare-share",
        env=env,
        cwd=ROOT,
        log_dir=tmp_path / "logs",
    )
    try:
        first = share.wait_for("shared", timeout=60)[-1]
        assert not any(f"/{NEW}/" in a for a in first["addresses"]), first
        ip("-n", netns, "addr", "add", f"{NEW}/32", "dev", "lo")
        for _ in range(20):
            ev = share.wait_for("addresses", timeout=30)[-1]
            if "code" in ev:
                break
        else:
            raise AssertionError("no new code after the address came")
        moved = parse_code(ev["code"])
        assert any(a.startswith(f"/ip4/{NEW}/tcp/") for a in moved.addresses), moved.addresses
        assert moved.share_code == parse_code(first["code"]).share_code

        out = tmp_path / "out"
        get = Proc(
            [
                *in_ns,
                "get",
                ev["code"],
                "-o",
                str(out),
                "--json",
                "--yes",
                "--no-mdns",
                "--listen",
                f"/ip4/{NEW}/tcp/0",
            ],
            name="p2pshare-get",
            env=env_for(tmp_path / "rx") | {"P2PSHARE_NO_DEFAULT_BOOTSTRAP": "1"},
            cwd=ROOT,
            log_dir=tmp_path / "logs",
        )
        try:
            done = get.wait_for("done", timeout=60)[-1]
            assert get.wait(30) == 0
        finally:
            get.close()
        assert (out / "hello.txt").read_bytes() == src.read_bytes(), done
        share.kill(signal.SIGTERM)
        assert share.wait(20) == 0
    finally:
        share.close()
