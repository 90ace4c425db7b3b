"""Strangers holding a sharer's pre-authentication slots from one address
cannot keep a receiver from another address out.

Before the per-source cap, 40 fresh identities from one host, each with 8
silent transfer streams, held all 256 of a real sharer's slots until their
30 s handshake timeout: a real ``get`` from another address failed after
its ``--timeout 20``. Loopback is this machine and not counted, so the
flood comes from this machine's own non-loopback address and the receiver
over loopback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from p2pshare import sharecode
from p2pshare.sharecode.parse import parse_code
from p2pshare.transfer.registry import ShareRegistry
from tests.cli.helpers import Proc, free_port, own_address, run, start_module, tree_digest, write_random

Sharer = Callable[..., tuple[Proc, dict[str, Any]]]
OWN = own_address()


def _with(code: str, addrs: tuple[str, ...]) -> str:
    """``code`` naming only ``addrs``."""
    parsed = parse_code(code)
    assert isinstance(parsed, sharecode.ShareCode)
    return sharecode.ShareCode(
        peer_id=parsed.peer_id,
        addresses=addrs,
        encryption_key=parsed.encryption_key,
        share_code=parsed.share_code,
    ).encode()


@pytest.mark.skipif(OWN is None, reason="needs a non-loopback address of this machine")
def test_a_flood_from_one_address_leaves_room_for_a_receiver_from_another(tmp_path: Path, sharer: Sharer) -> None:
    src = tmp_path / "src"
    write_random(src / "a.bin", 200_000)
    port = free_port()
    _, shared = sharer(src, port=port, extra=("--listen", f"/ip4/{OWN}/tcp/0"))
    own = tuple(a for a in shared["addresses"] if a.startswith(f"/ip4/{OWN}/"))
    assert own, shared["addresses"]
    flood = start_module(
        "tests.hostile.handshake_flood", _with(shared["code"], own), "40", "60", home=tmp_path / "flooder"
    )
    try:
        assert flood.stdout is not None
        report = json.loads(flood.stdout.readline() or "{}")
        per_source = ShareRegistry().max_handshakes_per_source
        assert report.get("opened") == 320, report
        res = run(
            [
                "get",
                _with(shared["code"], (f"/ip4/127.0.0.1/tcp/{port}",)),
                "-o",
                str(tmp_path / "out"),
                "--yes",
                "--timeout",
                "20",
            ],
            tmp_path / "rx",
        )
        assert res.returncode == 0, res.stderr
        assert tree_digest(tmp_path / "out" / "src") == tree_digest(src)
        assert report["held"] <= per_source, report  # the rest were refused at once
    finally:
        flood.kill()
        flood.wait()
