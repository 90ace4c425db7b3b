"""``python -m tests.hostile.conn_flood ADDR HOSTS PER HOLD``: ``HOSTS`` fresh
peer identities (peer IDs cost nothing to make), each dialling ``PER``
authenticated connections to the peer at ``ADDR`` (a multiaddr with
``/p2p/<id>``). After 2 s prints ``{"dialled": D, "alive": A}``: A is how
many of those connections the peer kept. Then holds them ``HOLD`` seconds."""

from __future__ import annotations

import json
import sys
from contextlib import AsyncExitStack

import trio
from libp2p.crypto.ed25519 import create_new_key_pair

from p2pshare.node.host import Host, open_host


async def main(addr: str, hosts: int, per: int, hold: float) -> None:
    peer = addr.rsplit("/p2p/", 1)[1]
    dialled = 0
    made: list[Host] = []
    async with AsyncExitStack() as stack:
        for _ in range(hosts):
            host = await stack.enter_async_context(open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"]))
            made.append(host)
            for _ in range(per):
                dialled += 1
                with trio.move_on_after(5):
                    try:
                        await host.dial_direct(peer, addr)
                    except Exception:
                        pass  # refused: counted by what stays alive
        await trio.sleep(2)
        alive = sum(len(h.connections(peer)) for h in made)
        print(json.dumps({"dialled": dialled, "alive": alive}), flush=True)
        await trio.sleep(hold)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
