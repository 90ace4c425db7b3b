"""Round-trip time with the standard libp2p ping protocol (``/ipfs/ping/1.0.0``).

Every libp2p implementation serves it, so the RTT we report for a connection
is measured the same way whatever the peer runs.
"""

from __future__ import annotations

import os
import time

from p2pshare.transfer.stream import ByteStream

PING_PROTOCOL = "/ipfs/ping/1.0.0"
_PING_SIZE = 32


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
