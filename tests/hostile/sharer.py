"""A sharer that stalls on purpose: ``python -m tests.hostile.sharer MODE``.

Prints a v1 share code (its peer ID, a loopback address, a random key) as
the first line of stdout, then serves the transfer protocol badly:

* ``silent``: accepts each stream and never says anything (no CHALLENGE);
* ``busy``: answers every HELLO with ERROR BUSY, forever;
* ``trickle``: sends its CHALLENGE one byte every 0.5 s;
* ``hangup``: reads the HELLO, then resets the stream, every time.

Used by tests/cli/test_deadlines.py: ``get --timeout`` must hold against
each (issue 9, finding 2).
"""

from __future__ import annotations

import os
import sys

import trio

from p2pshare import sharecode
from p2pshare.node.host import LibP2PByteStream, open_host
from p2pshare.node.identity import generate_identity
from p2pshare.transfer import PROTOCOL_ID, wire


async def _serve(mode: str, stream: LibP2PByteStream) -> None:
    if mode == "silent":
        await trio.sleep_forever()
    if mode == "busy":
        await stream.read(1 << 16)
        await stream.write(wire.encode(wire.Error(wire.ErrorCode.BUSY, "busy, try again later")))
        await stream.close_write()
        return
    if mode == "trickle":
        for byte in wire.encode(wire.Challenge(os.urandom(32))):
            await stream.write(bytes([byte]))
            await trio.sleep(0.5)
        await trio.sleep_forever()
    if mode == "hangup":
        await stream.read(1 << 16)
        await stream.reset()
        return
    raise SystemExit(f"unknown mode {mode}")


async def main(mode: str) -> None:
    async with open_host(generate_identity(), ["/ip4/127.0.0.1/tcp/0"]) as host:

        async def handler(stream: LibP2PByteStream) -> None:
            try:
                await _serve(mode, stream)
            finally:
                with trio.CancelScope(shield=True):
                    await stream.reset()

        host.set_stream_handler(PROTOCOL_ID, handler)
        addrs = tuple(a for a in host.listen_addrs() if a.startswith("/ip4/127.0.0.1/"))
        code = sharecode.ShareCode(
            peer_id=host.peer_id, addresses=addrs, encryption_key=os.urandom(32), share_code=sharecode.new_human_code()
        )
        print(code.encode(), flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
