"""Round-trip time with the standard libp2p ping protocol (``/ipfs/ping/1.0.0``).

Every libp2p implementation serves it, so the RTT we report for a connection
is measured the same way whatever the peer runs. :func:`serve_ping` is our
side of it for everyone else (``open_host`` registers it in place of
py-libp2p's ``PingService`` handler, which kept an entry per peer ID that
ever pinged, for the host's whole life: on a node up for months, one per
stranger).
"""

from __future__ import annotations

import os
import time

import trio

from p2pshare.transfer.stream import ByteStream

PING_PROTOCOL = "/ipfs/ping/1.0.0"
_PING_SIZE = 32
#: A ping stream that brings no ping for this long is closed (go-libp2p's
#: and py-libp2p's idle rule).
PING_IDLE = 60.0


async def measure_rtt(stream: ByteStream, rounds: int = 3) -> float:
    """Median RTT in milliseconds over ``rounds`` pings on an open ping stream."""
    samples: list[float] = []
    for _ in range(rounds):
        payload = os.urandom(_PING_SIZE)
        start = time.perf_counter()
        await stream.write(payload)
        got = b""
        while len(got) < _PING_SIZE:
            part = await stream.read(_PING_SIZE - len(got))
            if not part:
                raise ConnectionError("ping stream closed")
            got += part
        if got != payload:
            raise ConnectionError("ping echo mismatch")
        samples.append((time.perf_counter() - start) * 1000.0)
    samples.sort()
    return samples[len(samples) // 2]


async def serve_ping(stream: ByteStream) -> None:
    """Echo each 32-byte ping until the peer ends the stream, breaks it, or
    sends none for :data:`PING_IDLE` seconds. No state outlives the stream;
    the resource manager allows 2 ping streams per peer."""
    try:
        while True:
            payload = b""
            with trio.move_on_after(PING_IDLE):
                while len(payload) < _PING_SIZE:
                    part = await stream.read(_PING_SIZE - len(payload))
                    if not part:
                        return  # the peer's end (a cut ping is dropped, as go-libp2p does)
                    payload += part
            if len(payload) < _PING_SIZE:
                return  # idle: the caller closes our side
            await stream.write(payload)
    except Exception:  # noqa: BLE001 - a reset or a broken connection: nothing left to answer
        return
