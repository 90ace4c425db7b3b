"""``python -m tests.hostile.stream_flood ADDR PROBE_ADDR HOSTS PER``: ``HOSTS``
fresh peer identities (peer IDs cost nothing to make) each connect once to
the peer at ``ADDR`` (a multiaddr with ``/p2p/<id>``) and open ``PER``
streams that never finish negotiating a protocol (the first bytes of the
multistream header, then nothing), so each holds a slot of the peer's until
its negotiation timeout. After 3 s one more identity connects to
``PROBE_ADDR`` (another address of the same peer) and pings it. Prints
``{"opened": O, "held": H, "probe_ok": bool, "probe_error": str}``: H is how
many streams the peer has not reset."""

from __future__ import annotations

import json
import sys
from contextlib import AsyncExitStack

import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID

from p2pshare.node.host import open_host
from p2pshare.node.ping import PING_PROTOCOL, measure_rtt
from tests.hostile._held import HeldStreams

#: The first bytes of ``/multistream/1.0.0\n`` behind its length: never completed.
PARTIAL_HEADER = b"\x13/multistream"


async def main(addr: str, probe_addr: str, hosts: int, per: int) -> None:
    peer = addr.rsplit("/p2p/", 1)[1]
    pid = ID.from_base58(peer)
    counted = HeldStreams()

    async with AsyncExitStack() as stack:
        streams = []
        for _ in range(hosts):
            host = await stack.enter_async_context(open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"]))
            await host.connect(peer, [addr], timeout=10)
            muxed = host._connections(pid)[0].muxed_conn
            for _ in range(per):
                try:
                    stream = await muxed.open_stream()
                    await stream.write(PARTIAL_HEADER)
                except Exception:
                    counted.refused()
                    continue
                streams.append(stream)
        async with trio.open_nursery() as nursery:
            for stream in streams:
                nursery.start_soon(counted.watch, stream)
            await trio.sleep(3)
            opened, held = counted.opened, counted.held
            probe_ok, probe_error = False, ""
            async with open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"]) as prober:
                try:
                    with trio.fail_after(5):
                        await prober.connect(peer, [probe_addr], timeout=5)
                        stream = await prober.open_stream(peer, PING_PROTOCOL)
                        await measure_rtt(stream, rounds=1)
                        probe_ok = True
                except Exception as exc:  # noqa: BLE001 - reported, not raised: the test reads it
                    probe_error = f"{type(exc).__name__}: {exc}"
            report = {"opened": opened, "held": held, "probe_ok": probe_ok, "probe_error": probe_error}
            print(json.dumps(report), flush=True)
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
