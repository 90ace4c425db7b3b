"""``python -m tests.hostile.handshake_flood CODE N HOLD``: ``N`` fresh peer
identities (peer IDs cost nothing to make) each open 8 transfer streams to
the sharer named by ``CODE`` and never prove the key, so each stream holds
one of the sharer's pre-authentication slots until its handshake timeout.
After 3 s prints ``{"opened": O, "held": H}`` (H: streams the sharer has not
reset), then holds them ``HOLD`` seconds."""

from __future__ import annotations

import json
import sys
from contextlib import AsyncExitStack

import trio
from libp2p.crypto.ed25519 import create_new_key_pair

from p2pshare.node.host import LibP2PByteStream, open_host
from p2pshare.sharecode.parse import parse_code
from p2pshare.transfer import PROTOCOL_ID

STREAMS_PER_PEER = 8


async def main(code: str, n: int, hold: float) -> None:
    target = parse_code(code)
    peer, addrs = target.peer_id, list(target.addresses)  # type: ignore[union-attr]
    opened, reset = 0, 0

    async def watch(s: LibP2PByteStream) -> None:
        nonlocal reset
        try:
            if not await s.read(1):
                reset += 1
        except Exception:
            reset += 1

    async with AsyncExitStack() as stack, trio.open_nursery() as nursery:
        for _ in range(n):
            host = await stack.enter_async_context(open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"]))
            await host.connect(peer, addrs, timeout=10)
            for _ in range(STREAMS_PER_PEER):
                try:
                    s = await host.open_stream(peer, PROTOCOL_ID)
                except Exception:
                    reset += 1
                    opened += 1
                    continue
                opened += 1
                nursery.start_soon(watch, s)
        await trio.sleep(3)
        print(json.dumps({"opened": opened, "held": opened - reset}), flush=True)
        await trio.sleep(hold)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
