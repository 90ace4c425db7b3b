"""Connection churn against a running node: a hostile-but-legal peer.

    .venv/bin/python scripts/churn.py PEER_ID ADDR [--sequential N] [--concurrent M] [--json]

``--sequential N``: N connections, each Noise+yamux upgraded, then closed
before the next one of its worker; ``--workers W`` (default 8) clients run
side by side, each with its own identity, because closing a py-libp2p
connection takes ~0.2 s of sleeps on the closing side. ``--concurrent M``: M hosts (M identities) connected at once (with at
most W handshakes in flight: a node admits 16 per IP address), held for
2 s, then closed. Prints what succeeded and how long it took.
py-libp2p 0.8.1 kept every inbound connection's slot until the process
stopped: after 256 in a lifetime, closed or not, a node refused everyone
(issue 9, finding 1). Loopback and lab namespaces only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pshare.node.host import Host, configure_libp2p_logging, open_host  # noqa: E402
from p2pshare.node.identity import generate_identity  # noqa: E402

CONNECT_TIMEOUT = 10.0


async def _once(host: Host, peer_id: str, addr: str) -> bool:
    try:
        await host.connect(peer_id, [addr], timeout=CONNECT_TIMEOUT)
    except Exception:  # noqa: BLE001 - counted, not raised
        return False
    for conn in host.connections(peer_id):
        await conn.close()
    return True


async def sequential(peer_id: str, addr: str, n: int, workers: int) -> dict[str, float | int]:
    ok = 0
    failures: list[int] = []
    started = time.monotonic()
    counter = iter(range(n))

    async def worker() -> None:
        nonlocal ok
        async with open_host(generate_identity(), ["/ip4/127.0.0.1/tcp/0"]) as host:
            for i in counter:
                if await _once(host, peer_id, addr):
                    ok += 1
                else:
                    failures.append(i)

    async with trio.open_nursery() as nursery:
        for _ in range(max(1, workers)):
            nursery.start_soon(worker)
    return {
        "sequential": n,
        "sequential_ok": ok,
        "first_failure": min(failures, default=-1),
        "sequential_seconds": round(time.monotonic() - started, 1),
    }


async def concurrent(peer_id: str, addr: str, m: int, workers: int = 8) -> dict[str, float | int]:
    """M identities connected at once (at most ``workers`` handshakes in flight)."""
    started = time.monotonic()
    results: list[bool] = []
    in_flight = trio.Semaphore(max(1, workers))
    async with AsyncExitStack() as stack:
        # No listeners: a client needs none, and 1,000 of them stay cheap.
        hosts = [await stack.enter_async_context(open_host(generate_identity(), [])) for _ in range(m)]

        async def connect(host: Host) -> None:
            async with in_flight:
                try:
                    await host.connect(peer_id, [addr], timeout=60)
                    results.append(True)
                except Exception:  # noqa: BLE001 - counted
                    results.append(False)

        async with trio.open_nursery() as nursery:
            for host in hosts:
                nursery.start_soon(connect, host)
        connected_at = time.monotonic()
        await trio.sleep(2.0)  # held together: the peer must not drop them
        held = sum(1 for h in hosts if h.connections(peer_id))
    return {
        "concurrent": m,
        "concurrent_ok": sum(results),
        "concurrent_held": held,
        "concurrent_seconds": round(connected_at - started, 1),
    }


async def main(args: argparse.Namespace) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    if args.sequential:
        out |= await sequential(args.peer_id, args.addr, args.sequential, args.workers)
    if args.concurrent:
        out |= await concurrent(args.peer_id, args.addr, args.concurrent, args.workers)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("peer_id")
    p.add_argument("addr")
    p.add_argument("--sequential", type=int, default=0)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--concurrent", type=int, default=0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    configure_libp2p_logging()  # a refused handshake is what we count, not an ERROR line
    result = trio.run(main, a)
    print(json.dumps(result) if a.json else "  ".join(f"{k}={v}" for k, v in result.items()), flush=True)
