"""The public helper node for the DCUtR/AutoNAT/natinfo tests, in its own process.

    python -m tests.dcutr._relay_side --listen /ip4/IP/tcp/4001 [--stun-ip IP]
        [--no-relay] [--dial-private]

Runs the project's circuit relay v2 server (``relay.server``), our AutoNAT
server and a STUN-over-TCP responder on ports 3478 and 3479. Prints one JSON
line ``{"peer", "addrs"}`` when ready and runs until stdin closes.
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
    from p2pshare.node.natinfo._trio_stun import serve_stun_tcp

    key = generate_identity()
    async with open_host(key, [args.listen]) as host:
        async with trio.open_nursery() as nursery:
            if not args.no_relay:
                from p2pshare.node.circuit.hop import serve_relay
                from p2pshare.node.circuit.limits import RelayLimits

                await nursery.start(
                    serve_relay,
                    host,
                    RelayLimits(),
                )
            await nursery.start(
                serve_autonat_server, host, ServerConfig(dial_private=args.dial_private, dial_timeout=args.dial_timeout)
            )
            stun_ports: list[int] = []
            if args.stun_ip:
                stun_ports = await nursery.start(serve_stun_tcp, args.stun_ip, args.stun_port)
            print(json.dumps({"peer": host.peer_id, "addrs": host.listen_addrs(), "stun": stun_ports}), flush=True)
            if args.run_for:
                await trio.sleep(args.run_for)
            else:
                await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
            nursery.cancel_scope.cancel()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    p.add_argument("--stun-ip")
    p.add_argument("--stun-port", type=int, action="append", default=None)
    p.add_argument("--no-relay", action="store_true")
    p.add_argument("--dial-private", action="store_true")
    p.add_argument("--dial-timeout", type=float, default=3.0)
    p.add_argument("--run-for", type=float, default=0.0, help="exit after this long (stdin ignored)")
    args = p.parse_args()
    args.stun_port = args.stun_port or [3478, 3479]
    import logging

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="relay-side: %(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    trio.run(_main, args)


if __name__ == "__main__":
    main()
