"""A peer that stops acknowledging is dropped (``_libp2p_tcp_timeout``).

Two real hosts in a network namespace of their own; an nftables rule then
drops every packet of their connection, as when a peer vanishes without a
FIN. With the user timeout both close it within seconds (timings cut for
the test, see ``_blackhole_probe``); py-libp2p as it comes kept it until
TCP gave up retransmitting (~15 min).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from p2pshare.node._libp2p_tcp_timeout import set_user_timeout
from tests.harness import ALONE, runs_alone

ROOT = Path(__file__).resolve().parents[2]


def _usable() -> bool:
    if shutil.which("nft") is None or not hasattr(socket, "TCP_USER_TIMEOUT"):
        return False
    return runs_alone("nft", "list", "ruleset")


def _probe(patched: bool) -> float | None:
    res = subprocess.run(
        [*ALONE, sys.executable, "-m", "tests.node._blackhole_probe", "1" if patched else "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    closed: float | None = json.loads(res.stdout.strip().splitlines()[-1])["closed_after"]
    return closed


def test_the_option_is_set_on_a_tcp_socket() -> None:
    if not hasattr(socket, "TCP_USER_TIMEOUT"):
        pytest.skip("no TCP_USER_TIMEOUT on this platform")
    with socket.socket() as sock:
        assert set_user_timeout(sock, 2.5)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 2500


@pytest.mark.skipif(not _usable(), reason="needs unshare -n, nft and TCP_USER_TIMEOUT (Linux, root)")
def test_a_vanished_peer_is_dropped_within_seconds_not_minutes() -> None:
    closed = _probe(patched=True)
    assert closed is not None and closed < 6, closed  # 1.5 s of silence after a ping, on each side
    assert _probe(patched=False) is None  # upstream: still "connected" 10 s later
