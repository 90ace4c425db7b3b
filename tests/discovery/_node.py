"""One discovery node in its own process, driven by JSON lines on stdin/stdout.

    python -m tests.discovery._node [--identity PATH] [--client]
        [--bootstrap ADDR ...] [--peers-file PATH] [--no-refresh]

Prints ``{"event": "ready", "peer_id", "addrs"}`` once listening, then
answers each request line ``{"id": n, "cmd": ..., ...}`` with ``{"id": n,
"ok": true, "result": ...}`` or ``{"id": n, "ok": false, "error": "..."}``;
requests run concurrently. Exits when stdin closes (saving the peers file).
Logging goes to stderr at WARNING, as the CLI sets it up, so tests can check
that nothing noisy reaches the user's terminal.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import trio


async def _handle(disc: Any, host: Any, req: dict[str, Any]) -> Any:
    cmd = req["cmd"]
    if cmd == "advertise":
        return await disc.advertise(bytes.fromhex(req["key"]), timeout=req.get("timeout", 20))
    if cmd == "withdraw":
        disc.withdraw(bytes.fromhex(req["key"]))
        return None
    if cmd == "find_providers":
        found = await disc.find_providers(bytes.fromhex(req["key"]), timeout=req["timeout"], limit=req.get("limit", 20))
        return {
            "providers": [dataclasses.asdict(p) for p in found],
            "stats": dataclasses.asdict(disc.last_lookup),
        }
    if cmd == "find_peer":
        addrs = await disc.find_peer(req["peer_id"], timeout=req["timeout"])
        return {"addrs": addrs, "stats": dataclasses.asdict(disc.last_lookup)}
    if cmd == "wait_bootstrapped":
        return await disc.wait_bootstrapped(req["timeout"])
    if cmd == "table":
        return disc.routing_table_peers()
    if cmd == "connected":
        return host.is_connected(req["peer_id"])
    if cmd == "connect":
        await host.connect(req["peer_id"], req["addrs"], timeout=req.get("timeout", 5))
        return True
    if cmd == "self_lookup":
        peers = await disc.closest_peers(host.peer_id_bytes, timeout=req.get("timeout", 10))
        return len(peers)
    raise ValueError(f"unknown command {cmd!r}")


async def _serve(disc: Any, host: Any, stdout_lock: trio.Lock) -> None:
    stdin = trio.lowlevel.FdStream(0)
    buf = b""

    async def run(req: dict[str, Any]) -> None:
        try:
            out = {"id": req.get("id"), "ok": True, "result": await _handle(disc, host, req)}
        except Exception as e:
            out = {"id": req.get("id"), "ok": False, "error": f"{type(e).__name__}: {e}"}
        async with stdout_lock:
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()

    async with trio.open_nursery() as nursery:
        while True:
            data = await stdin.receive_some(65536)
            if not data:
                nursery.cancel_scope.cancel()
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    nursery.start_soon(run, json.loads(line))


async def main(args: argparse.Namespace) -> None:
    from libp2p.crypto.ed25519 import create_new_key_pair

    from p2pshare.node.discovery import open_discovery
    from p2pshare.node.host import open_host
    from p2pshare.node.identity import load_or_create_identity

    key_pair = load_or_create_identity(Path(args.identity)) if args.identity else create_new_key_pair()
    async with open_host(key_pair, [f"/ip4/127.0.0.1/tcp/{args.port}"]) as host:
        async with open_discovery(
            host,
            bootstrap=args.bootstrap,
            peers_file=Path(args.peers_file) if args.peers_file else None,
            server_mode=not args.client,
            refresh_interval=None if args.no_refresh else 600.0,
        ) as disc:
            ready = {"event": "ready", "peer_id": host.peer_id, "addrs": host.listen_addrs()}
            print(json.dumps(ready), flush=True)
            await _serve(disc, host, trio.Lock())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--identity")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--client", action="store_true")
    parser.add_argument("--bootstrap", nargs="*", default=[])
    parser.add_argument("--peers-file")
    parser.add_argument("--no-refresh", action="store_true")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if os.environ.get("DISCOVERY_DEBUG"):  # to look into a failing test
        logging.getLogger("p2pshare.node.discovery").setLevel(logging.DEBUG)
    trio.run(main, parser.parse_args())
