"""A NATed peer for the DCUtR/AutoNAT tests, in its own process.

    python -m tests.dcutr._peer_main --relay ADDR [--dial PEER_ID] [--stun IP:PORT]...
        [--autonat ADDR]... [--listen ADDR] [--allow-loopback] [--seed N]

Without ``--dial`` it reserves a slot on the relay and waits for a relayed
connection (DCUtR initiator); with it, it dials that peer through the relay
(DCUtR responder), then opens a ``/t/echo`` stream and reports which path
carried it. JSON lines on stdout: ready, nat, reserved, relayed, upgraded /
upgrade_failed, stream, autonat. Runs until stdin closes or ``--exit-after``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

ECHO = "/t/echo"
T0 = time.monotonic()


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": round(time.monotonic() - T0, 3), **fields}), flush=True)


async def _echo(stream: Any) -> None:
    for _ in range(1000):
        data = await stream.read(65536)
        if not data:
            return
        await stream.write(data)


async def _main(args: argparse.Namespace) -> None:
    from p2pshare.node.autonat._trio_client import open_autonat
    from p2pshare.node.autonat.client import AutoNATConfig
    from p2pshare.node.circuit.client import open_relay_client
    from p2pshare.node.dcutr.policy import PunchConfig
    from p2pshare.node.host import open_host
    from p2pshare.node.identity import generate_identity
    from p2pshare.node.natinfo._trio_stun import probe_nat

    async with open_host(generate_identity(), [args.listen]) as host:
        host.set_stream_handler(ECHO, _echo)
        emit("ready", peer=host.peer_id, addrs=host.listen_addrs())
        observed: list[str] = []
        if args.stun:
            from p2pshare.node.dcutr._trio_libp2p import listen_tcp

            local = listen_tcp(host)[0]
            servers = [(s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1])) for s in args.stun]
            report = await probe_nat(local, servers)
            if report.punchable and report.public is not None:
                observed.append(f"/ip4/{report.public[0]}/tcp/{report.public[1]}")
            emit(
                "nat",
                mapping=report.mapping.value,
                public=report.public,
                preserving=report.port_preserving,
                answers=report.observations,
            )
        if args.observe_self:  # loopback: pretend a port-preserving NAT mapped us onto ourselves
            observed += [a for a in host.listen_addrs() if a.startswith("/ip4/127.")][:1]
        cfg = PunchConfig(
            rounds=args.rounds,
            allow_loopback=args.allow_loopback,
            unilateral_timeout=0 if args.no_unilateral else 2.0,
            **json.loads(os.environ.get("DCUTR_PUNCH", "{}")),
        )
        async with trio.open_nursery() as nursery:
            if args.autonat:
                acfg = AutoNATConfig(boot_delay=0, retry_interval=5, refresh_interval=600, request_timeout=10)

                async def autonat() -> None:
                    async with open_autonat(host, args.autonat, acfg) as client:
                        async for v in client.watch():
                            emit(
                                "autonat",
                                reachability=v.reachability.value,
                                confirmed=v.confirmed,
                                addrs=list(v.addrs),
                                results=[r.outcome.value for r in client.last_results],
                            )

                nursery.start_soon(autonat)
            if args.relay:

                def on_event(ev: Any) -> None:
                    emit(ev.event, **{k: v for k, v in dataclasses.asdict(ev).items() if k != "event"})

                async with _maybe_dcutr(args, host, cfg, observed, on_event):
                    async with open_relay_client(host, [] if args.dial else [args.relay]) as relay:
                        if args.dial:
                            await relay.dial_via_relay(args.dial, args.relay + f"/p2p-circuit/p2p/{args.dial}")
                            emit("relayed", path=host.connection_path(args.dial))
                            await _after_dial(host, args.dial, args.wait_upgrade)
                        else:
                            ok = await relay.wait_reserved(15)
                            emit("reserved", ok=ok)
                        await _wait_exit(args.exit_after)
            else:
                await _wait_exit(args.exit_after)
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def _maybe_dcutr(
    args: argparse.Namespace, host: Any, cfg: Any, observed: list[str], on_event: Any
) -> AsyncIterator[None]:
    from p2pshare.node.dcutr._trio_service import open_dcutr

    if args.no_dcutr:
        yield
        return
    async with open_dcutr(host, cfg, observed=lambda: observed, on_event=on_event, rng=random.Random(args.seed)):
        yield


async def _after_dial(host: Any, peer: str, wait: float) -> None:
    """Wait for the upgrade, then prove a new stream uses the direct path."""
    with trio.move_on_after(wait):
        while host.connection_path(peer) != "direct":
            await trio.sleep(0.05)
    stream = await host.open_stream(peer, ECHO)
    path = "direct" if _stream_is_direct(host, peer, stream) else "relayed"
    payload = bytes(range(256)) * 64
    await stream.write(payload)
    await stream.close_write()
    got = b""
    with trio.move_on_after(10):
        while len(got) < len(payload):
            chunk = await stream.read(65536)
            if not chunk:
                break
            got += chunk
    emit("stream", path=path, echo_ok=got == payload)


def _stream_is_direct(host: Any, peer: str, stream: Any) -> bool:
    from p2pshare.node.dcutr._trio_libp2p import direct_conns

    return stream.connection in direct_conns(host, peer)


async def _wait_exit(after: float) -> None:
    with trio.move_on_after(after):
        if sys.stdin.isatty() or sys.stdin.closed or _stdin_is_devnull():
            await trio.sleep_forever()
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)


def _stdin_is_devnull() -> bool:
    import os

    try:
        return os.path.samefile("/dev/stdin", os.devnull)
    except OSError:
        return False


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--listen", default="/ip4/0.0.0.0/tcp/4001")
    p.add_argument("--relay")
    p.add_argument("--dial")
    p.add_argument("--stun", action="append", default=[])
    p.add_argument("--autonat", action="append", default=[])
    p.add_argument("--allow-loopback", action="store_true")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--wait-upgrade", type=float, default=20.0)
    p.add_argument("--exit-after", type=float, default=120.0)
    p.add_argument("--log", default="WARNING")
    p.add_argument("--no-dcutr", action="store_true")
    p.add_argument("--no-unilateral", action="store_true")
    p.add_argument("--observe-self", action="store_true")
    args = p.parse_args()
    import logging

    logging.basicConfig(
        level=args.log, stream=sys.stderr, format="peer: %(created).6f %(levelname)s %(name)s: %(message)s"
    )
    trio.run(_main, args)


if __name__ == "__main__":
    main()
