"""An AutoNAT server in its own process, for the AutoNAT tests.

    python -m tests.autonat._server_main [--dial-private] [--listen ADDR]
        [--dial-timeout S] [--per-ip-max N] [--max-jobs N] [--max-streams-per-peer N]
        [--max-streams-per-ip N]

Prints one JSON line ``{"peer", "addrs"}`` when ready and runs until stdin
closes.
"""

from __future__ import annotations

import argparse
import json
import sys

import trio


async def _main(args: argparse.Namespace) -> None:
    from p2pshare.node.autonat._trio_server import serve_autonat_server
    from p2pshare.node.autonat.server import ServerConfig
    from p2pshare.node.host import open_host
    from p2pshare.node.identity import generate_identity

    async with open_host(generate_identity(), [args.listen]) as host:
        async with trio.open_nursery() as nursery:
            cfg = ServerConfig(
                dial_private=args.dial_private,
                dial_timeout=args.dial_timeout,
                per_ip_max=args.per_ip_max,
                max_jobs=args.max_jobs,
                max_streams_per_peer=args.max_streams_per_peer,
                max_streams_per_ip=args.max_streams_per_ip,
            )
            await nursery.start(serve_autonat_server, host, cfg)
            addrs = [a for a in host.listen_addrs() if "127.0.0.1" in a or "0.0.0.0" not in args.listen]
            print(json.dumps({"peer": host.peer_id, "addrs": addrs}), flush=True)
            await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
            nursery.cancel_scope.cancel()


def main() -> None:
    from p2pshare.node.autonat.server import ServerConfig as ServerConfigDefaults

    p = argparse.ArgumentParser()
    p.add_argument("--dial-private", action="store_true")
    p.add_argument("--dial-timeout", type=float, default=3.0)
    p.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    defaults = ServerConfigDefaults()
    p.add_argument("--per-ip-max", type=int, default=defaults.per_ip_max)
    p.add_argument("--max-jobs", type=int, default=defaults.max_jobs)
    p.add_argument("--max-streams-per-peer", type=int, default=defaults.max_streams_per_peer)
    p.add_argument("--max-streams-per-ip", type=int, default=defaults.max_streams_per_ip)
    trio.run(_main, p.parse_args())


if __name__ == "__main__":
    main()
