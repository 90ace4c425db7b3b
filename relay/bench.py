"""Relay throughput bench: ``python -m p2pshare.relay.bench [--size MiB] [--runs N] [--json]``.

Three processes: a relay, a sharer-side peer (reserves on the relay, serves
``/bench/send/1``: writes SIZE bytes and closes) and a receiver-side peer
(reads to EOF). Each run measures the same two peers twice: connected
directly, then through a circuit (``dial_via_relay``; Noise + yamux run
end to end inside the circuit, as for a real transfer). Prints both medians
in MB/s (10^6 bytes/s). Roles run as ``python -m p2pshare.relay.bench ROLE ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import trio

SEND_PROTOCOL = "/bench/send/1"
_PIECE = 1 << 20


def _emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def _stdin_closed() -> None:
    """Wait for the orchestrator to close our stdin (our signal to stop)."""
    await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)  # type: ignore[call-arg]


async def _role_relay(args: argparse.Namespace) -> None:
    from p2pshare.node.circuit.hop import serve_relay
    from p2pshare.node.circuit.limits import RelayLimits
    from p2pshare.node.host import open_host
    from p2pshare.node.identity import generate_identity

    keys = generate_identity()
    async with open_host(keys, ["/ip4/127.0.0.1/tcp/0"]) as host:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                lambda task_status: serve_relay(
                    host, RelayLimits(), private_key=keys.private_key, task_status=task_status
                )
            )
            _emit(peer=host.peer_id, addrs=server.addrs())
            await _stdin_closed()
            _emit(bytes_relayed=server.stats.bytes_relayed)
            nursery.cancel_scope.cancel()


async def _role_sharer(args: argparse.Namespace) -> None:
    from p2pshare.node.circuit.client import open_relay_client
    from p2pshare.node.circuit.wire import STOP_PROTOCOL_ID, Status, StopMessage, StopType, encode_stop, read_stop
    from p2pshare.node.host import LibP2PByteStream, open_host
    from p2pshare.node.identity import generate_identity

    size = args.size
    block = os.urandom(_PIECE)

    async def send(stream: LibP2PByteStream) -> None:
        left = size
        while left > 0:
            n = min(left, _PIECE)
            await stream.write(block if n == _PIECE else block[:n])
            left -= n

    async def raw_stop(stream: LibP2PByteStream) -> None:
        """The circuit's bytes without the end-to-end Noise/yamux (--raw)."""
        await read_stop(stream.read)
        await stream.write(encode_stop(StopMessage(StopType.STATUS, status=Status.OK)))
        await send(stream)

    async with open_host(generate_identity(), ["/ip4/127.0.0.1/tcp/0"]) as host:
        host.set_stream_handler(SEND_PROTOCOL, send)
        async with open_relay_client(host, [args.relay], want=1) as client:
            if not await client.wait_reserved(10):
                raise SystemExit("sharer: no reservation within 10 s")
            if args.raw:
                host.set_stream_handler(STOP_PROTOCOL_ID, raw_stop)
            _emit(peer=host.peer_id, direct=host.listen_addrs(), relayed=client.relayed_addrs())
            await _stdin_closed()


async def _role_receiver(args: argparse.Namespace) -> None:
    from p2pshare.node import _libp2p_records as records
    from p2pshare.node.circuit.client import open_relay_client, parse_relay_addr
    from p2pshare.node.circuit.wire import HOP_PROTOCOL_ID, HopMessage, HopType, Peer, Status, encode_hop, read_hop
    from p2pshare.node.host import open_host
    from p2pshare.node.identity import generate_identity

    async with open_host(generate_identity(), ["/ip4/127.0.0.1/tcp/0"]) as host:
        async with open_relay_client(host, []) as client:

            async def fetch(path: str) -> float:
                stream = await host.open_stream(args.peer, SEND_PROTOCOL)
                got = 0
                start = time.perf_counter()
                while data := await stream.read(_PIECE):
                    got += len(data)
                elapsed = time.perf_counter() - start
                if got != args.size:
                    raise SystemExit(f"receiver: got {got} of {args.size} bytes over {path}")
                return float(args.size / elapsed / 1e6)

            async def fetch_raw() -> float:
                relay_id, relay_addr = parse_relay_addr(args.relayed)
                await host.connect(relay_id, [relay_addr], timeout=10)
                hop = await host.open_stream(relay_id, HOP_PROTOCOL_ID)
                target = Peer(records.peer_id_to_bytes(args.peer))
                await hop.write(encode_hop(HopMessage(HopType.CONNECT, peer=target)))
                answer = await read_hop(hop.read)
                if answer.status != Status.OK:
                    raise SystemExit(f"receiver: relay answered {answer}")
                got = 0
                start = time.perf_counter()
                while data := await hop.read(_PIECE):
                    got += len(data)
                elapsed = time.perf_counter() - start
                if got != args.size:
                    raise SystemExit(f"receiver: got {got} of {args.size} bytes over the raw circuit")
                return float(args.size / elapsed / 1e6)

            for run in range(args.runs):
                await host.connect(args.peer, args.direct, timeout=10)
                direct = await fetch("direct")
                await host.disconnect(args.peer)
                await trio.sleep(0.2)
                if args.raw:
                    relayed = await fetch_raw()
                else:
                    await client.dial_via_relay(args.peer, args.relayed)
                    assert host.connection_path(args.peer) == "relayed"
                    relayed = await fetch("relayed")
                await host.disconnect(args.peer)
                await trio.sleep(0.2)
                _emit(run=run + 1, direct=direct, relayed=relayed)


def _spawn(*role_args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "p2pshare.relay.bench", *role_args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _line(proc: subprocess.Popen[str], what: str) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"bench: {what} process died (exit {proc.wait()})")
    result: dict[str, Any] = json.loads(line)
    return result


def _stop(proc: subprocess.Popen[str]) -> None:
    try:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=15)
    except Exception:
        proc.kill()
        proc.wait()


def orchestrate(size_mib: int, runs: int, as_json: bool, raw: bool = False) -> dict[str, Any]:
    size = size_mib << 20
    relay = _spawn("relay")
    procs = [relay]
    try:
        r = _line(relay, "relay")
        sharer = _spawn("sharer", "--relay", r["addrs"][0], "--size", str(size), *(["--raw"] if raw else []))
        procs.append(sharer)
        s = _line(sharer, "sharer")
        recv = _spawn(
            "receiver",
            "--peer",
            s["peer"],
            "--relayed",
            s["relayed"][0],
            "--size",
            str(size),
            "--runs",
            str(runs),
            *(["--raw"] if raw else []),
            *[x for a in s["direct"] for x in ("--direct", a)],
        )
        procs.append(recv)
        rows = [_line(recv, "receiver") for _ in range(runs)]
        for row in rows:
            if not as_json:
                print(
                    f"run {row['run']}: direct {row['direct']:.1f} MB/s, relayed {row['relayed']:.1f} MB/s", flush=True
                )
    finally:
        for p in reversed(procs):
            _stop(p)
    return {
        "size_bytes": size,
        "runs": runs,
        "direct_mb_s": [round(x["direct"], 1) for x in rows],
        "relayed_mb_s": [round(x["relayed"], 1) for x in rows],
        "direct_median_mb_s": round(statistics.median(x["direct"] for x in rows), 1),
        "relayed_median_mb_s": round(statistics.median(x["relayed"] for x in rows), 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m p2pshare.relay.bench", description=__doc__)
    sub = p.add_subparsers(dest="role")
    sub.add_parser("relay")
    sh = sub.add_parser("sharer")
    sh.add_argument("--relay", required=True)
    sh.add_argument("--size", type=int, required=True)
    sh.add_argument("--raw", action="store_true")
    rc = sub.add_parser("receiver")
    rc.add_argument("--peer", required=True)
    rc.add_argument("--direct", action="append", required=True)
    rc.add_argument("--relayed", required=True)
    rc.add_argument("--size", type=int, required=True)
    rc.add_argument("--runs", type=int, default=3)
    rc.add_argument("--raw", action="store_true")
    p.add_argument("--size", type=int, default=256, metavar="MiB", help="bytes per transfer, in MiB (default 256)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--raw",
        action="store_true",
        help="relayed runs carry raw bytes on the circuit, without end-to-end Noise/yamux "
        "(isolates the relay's forwarding)",
    )
    args = p.parse_args(argv)
    roles = {"relay": _role_relay, "sharer": _role_sharer, "receiver": _role_receiver}
    if args.role in roles:
        import logging

        logging.basicConfig(level=logging.WARNING, format=f"bench {args.role}: %(levelname)s %(name)s: %(message)s")
        trio.run(roles[args.role], args)
        return 0
    if not 1 <= args.runs <= 20 or not 1 <= args.size <= 16384:
        p.error("--runs must be 1..20 and --size 1..16384 MiB")
    result = orchestrate(args.size, args.runs, args.json, args.raw)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.size} MiB one way, median of {args.runs}: direct {result['direct_median_mb_s']} MB/s, "
            f"relayed {result['relayed_median_mb_s']} MB/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
