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

from p2pshare.node.host import open_host
from p2pshare.sharecode.parse import parse_code
from p2pshare.transfer import PROTOCOL_ID
from tests.hostile._held import HeldStreams

STREAMS_PER_PEER = 8


async def main(code: str, n: int, hold: float) -> None:
    target = parse_code(code)
    peer, addrs = target.peer_id, list(target.addresses)  # type: ignore[union-attr]
    streams = HeldStreams()
    async with AsyncExitStack() as stack, trio.open_nursery() as nursery:
        for _ in range(n):
            host = await stack.enter_async_context(open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"]))
            await host.connect(peer, addrs, timeout=10)
            for _ in range(STREAMS_PER_PEER):
                try:
                    s = await host.open_stream(peer, PROTOCOL_ID)
                except Exception:
                    streams.refused()
                    continue
                nursery.start_soon(streams.watch, s)
        await trio.sleep(3)
        print(json.dumps({"opened": streams.opened, "held": streams.held}), flush=True)
        await trio.sleep(hold)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
