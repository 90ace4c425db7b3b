"""A peer that abuses the connection itself: ``python -m tests.hostile.muxer MODE PEER ADDR [N]``.

Prints one JSON line with what it saw:

* ``overflow``: opens a yamux stream and sends N MiB on it at once, ignoring
  the 256 KiB window it was granted; reports whether the remote closed the
  connection (py-libp2p 0.8.1 only logged a warning and kept buffering);
* ``trickle``: negotiates a ping stream, then sends N MiB on it in 32 KiB
  DATA frames, each within one frame's slack but none within credit once
  the 256 KiB window is spent, and never reads the echoes (so the remote's
  ping handler soon stops reading too); reports whether the remote closed
  the connection (the slack was once granted again with every frame);
* ``halfopen``: opens N identify streams one after another, sends 200 KiB
  of junk on each, reads the answer to its end and never ends its own
  side; reports how many were answered and how many refused, then, after
  ``HALFOPEN_WAIT`` seconds (env, default 25), how many of the answered
  ones the remote has reset (it once kept every one, and its unread
  junk, until the connection closed, outside every stream limit);
* ``streams``: opens N yamux streams and never negotiates a protocol on
  them; reports how many the remote reset within 1.5 s;
* ``silent-transfers``: N identities open 8 transfer streams each and never
  send HELLO (more than the 64 session slots a sharer has); prints
  ``{"holding": K}`` and holds them until killed;
* ``handshakes``: opens N TCP connections from 127.0.0.1 that never start a
  handshake, then one more, and reports whether the remote closed that one
  at once, and whether it lets one from another source (127.0.0.2) in.

Used by tests/cli/test_resource_limits.py (issue 9: the resource manager).
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
from typing import Any

import trio

from p2pshare.node.host import open_host
from p2pshare.node.identity import generate_identity

_HEADER = struct.Struct(">BBHII")  # version, type, flags, stream id, length
_DATA, _WINDOW_UPDATE = 0, 1
_SYN = 0x1
MiB = 1 << 20


def _muxed(host: Any, peer: str) -> Any:
    conns = host.libp2p.get_network().get_connections()
    return next(c.muxed_conn for c in conns if str(c.muxed_conn.peer_id) == peer)


async def overflow(peer: str, addr: str, mib: int) -> dict[str, Any]:
    async with open_host(generate_identity(), ["/ip4/127.0.0.1/tcp/0"]) as host:
        await host.connect(peer, [addr], timeout=10)
        muxed = _muxed(host, peer)
        sid = muxed.next_stream_id
        muxed.next_stream_id += 2
        sent = 0
        try:
            for i in range(mib):
                flags = _SYN if i == 0 else 0
                await muxed._write_frame(_HEADER.pack(0, _DATA, flags, sid, MiB) + bytes(MiB))
                sent += 1
        except Exception:  # noqa: BLE001 - the remote closing on us is the expected outcome
            pass
        with trio.move_on_after(5):
            await host.wait_disconnected(peer)
        return {"sent_mib": sent, "closed": not host.is_connected(peer)}


async def trickle(peer: str, addr: str, mib: int) -> dict[str, Any]:
    async with open_host(generate_identity(), ["/ip4/127.0.0.1/tcp/0"]) as host:
        await host.connect(peer, [addr], timeout=10)
        stream = await host.open_stream(peer, "/ipfs/ping/1.0.0")
        await stream.write(bytes(32))  # the protocol name rides with the first ping
        muxed = _muxed(host, peer)
        sid = stream.net_stream.muxed_stream.stream_id
        frame = _HEADER.pack(0, _DATA, 0, sid, 32 * 1024) + bytes(32 * 1024)
        sent = 0
        try:
            for _ in range(mib * 32):
                await muxed._write_frame(frame)
                sent += 1
        except Exception:  # noqa: BLE001 - the remote closing on us is the expected outcome
            pass
        with trio.move_on_after(5):
            await host.wait_disconnected(peer)
        return {"sent_kib": sent * 32, "closed": not host.is_connected(peer)}


async def halfopen(peer: str, addr: str, n: int) -> dict[str, Any]:
    import os

    async with open_host(generate_identity(), ["/ip4/127.0.0.1/tcp/0"]) as host:
        await host.connect(peer, [addr], timeout=10)
        answered, refused = [], 0
        for _ in range(n):
            try:
                stream = await host.open_stream(peer, "/ipfs/id/1.0.0")
                await stream.write(bytes(200 * 1024))
                while await stream.read(65536):
                    pass
                answered.append(stream)
            except Exception:  # noqa: BLE001 - a refused stream is reset; counted
                refused += 1
        await trio.sleep(float(os.environ.get("HALFOPEN_WAIT", "25")))
        reset = sum(1 for s in answered if s.net_stream.muxed_stream.reset_received)
        return {
            "answered": len(answered),
            "refused": refused,
            "reset_later": reset,
            "connected": host.is_connected(peer),
        }


async def streams(peer: str, addr: str, n: int) -> dict[str, Any]:
    async with open_host(generate_identity(), ["/ip4/127.0.0.1/tcp/0"]) as host:
        await host.connect(peer, [addr], timeout=10)
        muxed = _muxed(host, peer)
        opened = [await muxed.open_stream() for _ in range(n)]
        await trio.sleep(1.5)
        reset = sum(1 for s in opened if getattr(s, "reset_received", False))
        return {"opened": n, "reset": reset, "connected": host.is_connected(peer)}


async def handshakes(peer: str, addr: str, n: int) -> dict[str, Any]:
    parts = addr.split("/")
    ip, port = parts[2], int(parts[4])
    idle = []
    for _ in range(n):
        s = socket.create_connection((ip, port), timeout=5)
        idle.append(s)
    await trio.sleep(0.5)
    closed, closed_after = _closed_at_once(ip, port, "127.0.0.1")
    # Another address is not locked out: its connection is let into the handshake.
    other_closed, _ = _closed_at_once(ip, port, "127.0.0.2")
    for s in idle:
        s.close()
    return {"idle": n, "probe_closed": closed, "probe_closed_after": closed_after, "other_source_ok": not other_closed}


def _closed_at_once(ip: str, port: int, source: str) -> tuple[bool, float]:
    """Whether the remote closes a new connection from ``source`` within 1 s (and when)."""
    probe = socket.create_connection((ip, port), timeout=5, source_address=(source, 0))
    probe.settimeout(1.0)
    started = time.monotonic()
    try:
        closed = probe.recv(1) == b""
    except (TimeoutError, OSError):
        closed = False
    probe.close()
    return closed, round(time.monotonic() - started, 2)


async def silent_transfers(peer: str, addr: str, n: int) -> dict[str, Any]:
    """N identities, each opening 8 transfer streams and never saying HELLO; held until killed."""
    from contextlib import AsyncExitStack

    from p2pshare.transfer import PROTOCOL_ID

    opened = 0
    async with AsyncExitStack() as stack:
        for _ in range(n):
            host = await stack.enter_async_context(open_host(generate_identity(), []))
            await host.connect(peer, [addr], timeout=10)
            for _ in range(8):
                try:
                    await host.open_stream(peer, PROTOCOL_ID)
                    opened += 1
                except Exception:  # noqa: BLE001 - refused streams are counted by what is left
                    pass
        print(json.dumps({"holding": opened}), flush=True)
        await trio.sleep(120)
    return {"opened": opened}


def main() -> None:
    mode, peer, addr = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 32
    fn = {
        "overflow": overflow,
        "trickle": trickle,
        "halfopen": halfopen,
        "streams": streams,
        "handshakes": handshakes,
        "silent-transfers": silent_transfers,
    }[mode]
    print(json.dumps(trio.run(fn, peer, addr, n)), flush=True)


if __name__ == "__main__":
    main()
