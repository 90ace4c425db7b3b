"""Strangers holding a sharer's pre-authentication slots from one address
cannot keep a receiver from another address out.

Before the per-source cap, 40 fresh identities from one host, each with 8
silent transfer streams, held all 256 of a real sharer's slots until their
30 s handshake timeout: a real ``get`` waited 15 s (it found the sharer 15 s
into the flood), and one whose ``--timeout`` ended first failed.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from p2pshare import sharecode
from p2pshare.sharecode.parse import parse_code
from p2pshare.transfer.registry import ShareRegistry
from tests.cli.helpers import ROOT, Proc, env_for, run, tree_digest, write_random
from tests.harness import PYTHON

Sharer = Callable[..., tuple[Proc, dict[str, Any]]]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _only(code: str, family: str) -> str:
    parsed = parse_code(code)
    assert isinstance(parsed, sharecode.ShareCode)
    addrs = tuple(a for a in parsed.addresses if a.startswith(f"/{family}/"))
    assert addrs, parsed.addresses
    return sharecode.ShareCode(
        peer_id=parsed.peer_id,
        addresses=addrs,
        encryption_key=parsed.encryption_key,
        share_code=parsed.share_code,
    ).encode()


@pytest.mark.skipif(not _ipv6_loopback(), reason="needs ::1: the receiver must come from another address")
def test_a_flood_from_one_address_leaves_room_for_a_receiver_from_another(tmp_path: Path, sharer: Sharer) -> None:
    src = tmp_path / "src"
    write_random(src / "a.bin", 200_000)
    _, shared = sharer(src, extra=("--listen", "/ip6/::1/tcp/0"))
    flood = subprocess.Popen(
        [PYTHON, "-m", "tests.hostile.handshake_flood", _only(shared["code"], "ip4"), "40", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(tmp_path / "flooder"),
        cwd=str(ROOT),
    )
    try:
        assert flood.stdout is not None
        report = json.loads(flood.stdout.readline() or "{}")
        per_source = ShareRegistry().max_handshakes_per_source
        assert report.get("opened") == 320, report
        res = run(
            ["get", _only(shared["code"], "ip6"), "-o", str(tmp_path / "out"), "--yes", "--timeout", "20"],
            tmp_path / "rx",
        )
        assert res.returncode == 0, res.stderr
        assert report["held"] <= per_source, report  # the rest were refused at once
        assert tree_digest(tmp_path / "out" / "src") == tree_digest(src)
    finally:
        flood.kill()
        flood.wait()
