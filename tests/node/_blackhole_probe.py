"""``python -m tests.node._blackhole_probe PATCHED`` (inside a network
namespace of its own, as root): two real hosts connect over loopback, then
an nftables rule drops every packet of that connection, as when a peer
vanishes without a FIN. Prints ``{"closed_after": S}`` (None: both were
still connected after 10 s).

Timings are cut for a test: yamux pings every 0.5 s (upstream: 30 s) and,
with ``PATCHED=1``, TCP_USER_TIMEOUT is 1.5 s (ours: 60 s). ``PATCHED=0``
leaves py-libp2p's TCP streams as upstream makes them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.stream_muxer.yamux import yamux

from p2pshare.node import _libp2p_patches
from p2pshare.node import _libp2p_tcp_timeout as T
from p2pshare.node.host import open_host


def _drop(port: int) -> None:
    for cmd in (
        ["nft", "add", "table", "inet", "blackhole"],
        ["nft", "add chain inet blackhole out { type filter hook output priority 0; }"],
        ["nft", "add", "rule", "inet", "blackhole", "out", "tcp", "dport", str(port), "drop"],
        ["nft", "add", "rule", "inet", "blackhole", "out", "tcp", "sport", str(port), "drop"],
    ):
        subprocess.run(cmd, check=True)


async def main(patched: bool) -> None:
    yamux.RTT_MEASURE_INTERVAL = 0.5  # type: ignore[attr-defined]
    T.USER_TIMEOUT = 1.5
    if not patched:
        _libp2p_patches.PATCHES.pop("tcp_user_timeout")
    async with (
        open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"]) as far,
        open_host(create_new_key_pair(), []) as near,
    ):
        port = far.listen_tcp()[0][1]
        await near.connect(far.peer_id, [f"/ip4/127.0.0.1/tcp/{port}/p2p/{far.peer_id}"], timeout=10)
        await trio.sleep(1.5)  # pings answered meanwhile: a live connection stays
        assert near.is_connected(far.peer_id) and far.is_connected(near.peer_id)
        _drop(port)
        started = time.monotonic()
        closed_after = None
        with trio.move_on_after(10):
            await near.wait_disconnected(far.peer_id)
            await far.wait_disconnected(near.peer_id)
            closed_after = round(time.monotonic() - started, 2)
        print(json.dumps({"closed_after": closed_after}), flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1] == "1")
