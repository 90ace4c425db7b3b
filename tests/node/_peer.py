"""A libp2p peer in its own process, for the node tests.

    python -m tests.node._peer ours|stock [--sec noise|plaintext|secio]

``ours`` runs ``node.host.open_host`` (patched); ``stock`` runs py-libp2p as
shipped (no patches applied in this process) with the given security. Both
serve the same protocols and print one JSON line ``{"peer", "addrs",
"patched"}`` when ready, then run until stdin closes.

Protocols: ``/t/echo`` echoes until EOF; ``/t/sha`` reads to EOF and answers
``"<n> <sha256 hex>"``; ``/t/boom`` raises; ``/t/send/<n>`` sends n bytes of a
deterministic pattern (see :func:`pattern`) and closes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Any

import trio

ECHO = "/t/echo"
SHA = "/t/sha"
BOOM = "/t/boom"
SEND = "/t/send"
STALL = "/t/stall"  # reads nothing, then resets the stream (stock peer only)


def pattern(n: int) -> bytes:
    """n bytes that are cheap to make and not trivially repetitive."""
    block = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(2053))
    reps = n // len(block) + 1
    return (block * reps)[:n]


class _Raw:
    """Stock INetStream with our read()/write()/close_write() names."""

    def __init__(self, s: Any) -> None:
        self.s = s
        self.protocol = str(s.get_protocol())

    async def read(self, n: int) -> bytes:
        from libp2p.network.stream.exceptions import StreamEOF

        try:
            return bytes(await self.s.read(n))
        except StreamEOF:
            return b""

    async def write(self, data: bytes) -> None:
        await self.s.write(data)

    async def close_write(self) -> None:
        await self.s.close()


async def _echo(s: Any) -> None:
    while data := await s.read(1 << 16):
        await s.write(data)
    await s.close_write()


async def _sha(s: Any) -> None:
    h = hashlib.sha256()
    n = 0
    while data := await s.read(1 << 20):
        h.update(data)
        n += len(data)
    await s.write(f"{n} {h.hexdigest()}".encode())
    await s.close_write()


async def _boom(s: Any) -> None:
    raise RuntimeError("handler failure on purpose")


async def _send(s: Any) -> None:
    n = int(s.protocol.rsplit("/", 1)[1])
    data = pattern(n)
    for i in range(0, n, 65000):
        await s.write(data[i : i + 65000])
    await s.close_write()


async def _stall(s: Any) -> None:
    await trio.sleep(0.5)  # the writer fills the 256 KiB window and waits for credit
    raise RuntimeError("reset on purpose")


async def _wait_stdin_closed() -> None:
    await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)


async def run_ours(send_sizes: list[int]) -> None:
    from libp2p.crypto.ed25519 import create_new_key_pair

    from p2pshare.node.host import open_host

    async with open_host(create_new_key_pair()) as host:
        host.set_stream_handler(ECHO, _echo)
        host.set_stream_handler(SHA, _sha)
        host.set_stream_handler(BOOM, _boom)
        for n in send_sizes:
            host.set_stream_handler(f"{SEND}/{n}", _send)
        print(json.dumps({"peer": host.peer_id, "addrs": host.listen_addrs(), "patched": True}))
        sys.stdout.flush()
        await _wait_stdin_closed()


async def run_stock(sec: str, send_sizes: list[int]) -> None:
    import multiaddr
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.crypto.x25519 import create_new_key_pair as x25519
    from libp2p.network.config import ConnectionConfig
    from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE
    from libp2p.security.noise.transport import Transport as Noise
    from libp2p.security.secio import transport as secio
    from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX
    from libp2p.stream_muxer.yamux.yamux import Yamux

    kp = create_new_key_pair()
    sec_opt: dict[Any, Any] = {
        "noise": {NOISE: Noise(kp, noise_privkey=x25519().private_key)},
        "plaintext": {PLAINTEXT_PROTOCOL_ID: InsecureTransport(kp)},
        "secio": {secio.ID: secio.Transport(kp)},
    }[sec]
    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    host = new_host(
        key_pair=kp,
        sec_opt=sec_opt,
        muxer_opt={YAMUX: Yamux},
        listen_addrs=listen,
        connection_config=ConnectionConfig(max_connections_per_peer=1),
    )

    def wrap(fn: Any) -> Any:
        async def handler(stream: Any) -> None:
            try:
                await fn(_Raw(stream))
            except Exception:
                await stream.reset()

        return handler

    async with host.run(listen_addrs=listen):
        try:
            host.set_stream_handler(ECHO, wrap(_echo))
            host.set_stream_handler(SHA, wrap(_sha))
            host.set_stream_handler(STALL, wrap(_stall))
            for n in send_sizes:
                host.set_stream_handler(f"{SEND}/{n}", wrap(_send))
            from p2pshare.node import _libp2p_patches

            addrs = [str(a) for a in host.get_transport_addrs()]
            info = {"peer": host.get_id().to_base58(), "addrs": addrs}
            info["patched"] = _libp2p_patches.is_applied()
            print(json.dumps(info))
            sys.stdout.flush()
            await _wait_stdin_closed()
        finally:
            await host.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["ours", "stock"])
    ap.add_argument("--sec", choices=["noise", "plaintext", "secio"], default="noise")
    ap.add_argument("--send", type=int, action="append", default=[])
    args = ap.parse_args()
    if args.kind == "ours":
        trio.run(run_ours, args.send)
    else:
        trio.run(run_stock, args.sec, args.send)


if __name__ == "__main__":
    main()
