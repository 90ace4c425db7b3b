"""``python -m tests.relay._peer RELAY_ADDR... [--want N]``: a node that
reserves through the relay client and serves ``/t/sha`` (reads to EOF, answers
``"<n> <sha256>"``). Prints ``{"peer", "relayed"}`` as a JSON line whenever
its relayed addrs change; runs until stdin closes."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys

import trio
from libp2p.crypto.ed25519 import create_new_key_pair

from p2pshare.node.circuit.client import open_relay_client
from p2pshare.node.host import LibP2PByteStream, open_host

SHA = "/t/sha"


async def sha(s: LibP2PByteStream) -> None:
    h, n = hashlib.sha256(), 0
    while data := await s.read(1 << 20):
        h.update(data)
        n += len(data)
    await s.write(f"{n} {h.hexdigest()}".encode())


async def main(args: argparse.Namespace) -> None:
    async with open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"]) as host:
        host.set_stream_handler(SHA, sha)

        def changed(addrs: list[str]) -> None:
            print(json.dumps({"peer": host.peer_id, "relayed": addrs}), flush=True)

        async with open_relay_client(host, args.relays, want=args.want, on_change=changed):
            await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)  # type: ignore[call-arg]


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("relays", nargs="+")
    p.add_argument("--want", type=int, default=1)
    logging.basicConfig(level=logging.WARNING, format="peer: %(levelname)s %(name)s: %(message)s")
    trio.run(main, p.parse_args())
