"""``python -m tests.hostile.hop_flood RELAY_ADDR N``: a peer that opens ``N``
HOP streams to a relay over one connection, each carrying a message the
relay must refuse (alternately bytes that are no protobuf, and a STATUS a
client may not send), the cheapest way to make a relay log. Prints
``{"streams": N, "seconds": S}`` when done."""

from __future__ import annotations

import json
import sys
import time

import trio
from libp2p.crypto.ed25519 import create_new_key_pair

from p2pshare.node.circuit.wire import HOP_PROTOCOL_ID, HopMessage, HopType, encode_hop
from p2pshare.node.host import open_host

GARBAGE = b"\x05\xff\xff\xff\xff\xff"


async def main(addr: str, n: int) -> None:
    relay = addr.rsplit("/p2p/", 1)[1]
    async with open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"]) as host:
        await host.connect(relay, [addr], timeout=10)
        began = time.monotonic()
        for i in range(n):
            s = await host.open_stream(relay, HOP_PROTOCOL_ID)
            await s.write(GARBAGE if i % 2 == 0 else encode_hop(HopMessage(HopType.STATUS)))
            with trio.move_on_after(2):
                try:
                    await s.read(100)  # the relay's refusal, or its reset
                except Exception:
                    pass
            await s.reset()
        print(json.dumps({"streams": n, "seconds": round(time.monotonic() - began, 2)}), flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))
