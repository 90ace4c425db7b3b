"""Flood a DHT server with ADD_PROVIDER and PUT_VALUE from many identities; watch its memory.

    .venv/bin/python scripts/dht_flood.py [--seconds 60] [--identities 200]
        [--connections 16] [--session 3] [--addrs 64] [--record-addrs 1000]
        [--server PEER_ID ADDR --pid PID] [--json]

Starts ``p2pshare node --dht-server`` on 127.0.0.1 (its own P2PSHARE_HOME,
no default bootstrap) unless ``--server`` names a running one (``--pid``
then gives its process for the memory readings). ``--connections`` hosts
flood at once; each takes the next of ``--identities`` identities in turn,
connects, and writes requests back to back on KAD streams for
``--session`` seconds, opening a new stream whenever the server resets one
(rate limit, refused value, request cap):

* ADD_PROVIDER for a new key every time, the sender as provider with
  ``--addrs`` addresses (the first 8 are ~240-byte DNS names, so every
  stored record is as large as the bounds allow) and a signed peer record
  with ``--record-addrs`` addresses;
* every 8th request a PUT_VALUE of 16 KiB, every 50th an ADD_PROVIDER of
  1 MiB.

Prints JSON: requests sent (started; a reset may cut one short), bytes
whose write completed, streams and connections; the server's VmRSS and
VmHWM (MB) at the start, every 10 s and at the end; whether it answers a
legitimate FIND_NODE and GET_PROVIDERS (a fresh identity, fresh streams)
every 10 s during the flood and afterwards. ``cap_mb`` is what the
server's peak RSS (VmHWM) must stay under: its RSS at the start, plus
``PROVIDER_MEMORY_MB`` (the provider records, node/_libp2p_provider_table.py),
plus ``--slack-mb`` for connections, buffers and the allocator. Exits 1
when it does not, or when the server no longer answers.
Loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import multiaddr
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from p2pshare.node import _libp2p_provider_table as bounds  # noqa: E402
from p2pshare.node import _libp2p_records as records  # noqa: E402
from p2pshare.node.discovery import wire  # noqa: E402
from p2pshare.node.host import Host, StreamError, open_host  # noqa: E402
from p2pshare.node.identity import generate_identity  # noqa: E402
from p2pshare.node.pbwire import frame, try_unframe  # noqa: E402
from tests.discovery._kad import signed_record, tcp_addrs  # noqa: E402
from tests.harness import PeerProcess  # noqa: E402

KAD = "/ipfs/kad/1.0.0"
SAMPLE_EVERY = 10.0


def vm_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid`` in MB, from /proc."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = round(int(rest.split()[0]) / 1024, 1)
    return out


def _long_addrs(n: int, tag: int) -> list[bytes]:
    """``n`` DNS addresses of ~240 bytes (under the 256-byte cap, so they are stored)."""
    label = "f" * 58
    return [
        multiaddr.Multiaddr(f"/dns4/{label}.{label}.{label}.{tag % 10**6:06d}{i:02d}{'g' * 40}/tcp/443").to_bytes()
        for i in range(n)
    ]


class Flood:
    def __init__(self, server: str, addr: str, args: argparse.Namespace) -> None:
        self.server, self.addr, self.args = server, addr, args
        self.keys = [generate_identity() for _ in range(args.identities)]
        self.next_identity = itertools.cycle(range(args.identities))
        self.used: set[int] = set()
        self.counts = dict.fromkeys(
            ("add_provider", "put_value", "oversized", "bytes_written", "streams", "streams_reset", "connections"), 0
        )
        self.connect_failures = 0
        self.oversized_addrs = tcp_addrs(100_000, 12)  # 1 MB of addresses

    def _messages(self, host: Host, index: int) -> Any:
        """Requests from this identity, forever: (kind, framed bytes)."""
        me = host.peer_id_bytes
        provider_addrs = _long_addrs(8, index) + tcp_addrs(max(0, self.args.addrs - 8), 10)
        record = signed_record(self.keys[index], tcp_addrs(self.args.record_addrs, 11))
        for n in itertools.count():
            if n % 50 == 49:
                msg = records.KadMessage(type=records.KadMessage.ADD_PROVIDER, key=os.urandom(34))
                peer = msg.providerPeers.add(id=me)
                peer.addrs.extend(self.oversized_addrs)
                yield "oversized", frame(msg.SerializeToString())
            elif n % 8 == 7:
                key = b"/flood/" + os.urandom(16).hex().encode()
                msg = records.KadMessage(type=records.KadMessage.PUT_VALUE, key=key)
                msg.record.key, msg.record.value = key, os.urandom(16 << 10)
                yield "put_value", frame(msg.SerializeToString())
            else:
                msg = records.KadMessage(type=records.KadMessage.ADD_PROVIDER, key=b"\x12\x20" + os.urandom(32))
                msg.senderRecord = record
                msg.providerPeers.add(id=me, addrs=provider_addrs)
                yield "add_provider", frame(msg.SerializeToString())

    async def worker(self, until: float) -> None:
        while trio.current_time() < until:
            index = next(self.next_identity)
            self.used.add(index)
            try:
                async with open_host(self.keys[index], ["/ip4/127.0.0.1/tcp/0"]) as host:
                    await host.connect(self.server, [self.addr], timeout=10)
                    self.counts["connections"] += 1
                    with trio.move_on_at(min(until, trio.current_time() + self.args.session)):
                        await self._session(host, index)
            except Exception:  # noqa: BLE001 - a refused connection is part of the figure
                self.connect_failures += 1
                await trio.sleep(0.2)

    async def _session(self, host: Host, index: int) -> None:
        messages = self._messages(host, index)
        while True:
            try:
                stream = await host.open_stream(self.server, KAD)
            except StreamError:
                self.counts["streams_reset"] += 1
                await trio.sleep(0.05)
                continue
            self.counts["streams"] += 1
            try:
                for kind, data in messages:
                    self.counts[kind] += 1  # started: a stream reset may cut it short
                    await stream.write(data)
                    self.counts["bytes_written"] += len(data)
            except StreamError:
                self.counts["streams_reset"] += 1
            finally:
                await stream.reset()


async def _answer(stream: Any) -> bytes:
    buf = b""
    while True:
        got = try_unframe(buf, 4 << 20)
        if got is not None:
            return got[0]
        part = await stream.read(65536)
        if not part:
            raise StreamError("closed without an answer")
        buf += part


async def probe(server: str, addr: str, timeout: float = 10.0) -> dict[str, Any]:
    """A legitimate client: FIND_NODE, then ADD_PROVIDER + GET_PROVIDERS of its own key."""
    out: dict[str, Any] = {"find_node": False, "get_providers": False, "own_record_stored": False}
    started = time.monotonic()
    try:
        with trio.fail_after(timeout):
            async with open_host(generate_identity(), ["/ip4/127.0.0.1/tcp/0"]) as host:
                await host.connect(server, [addr], timeout=timeout)
                for attempt in range(5):  # the flood may hold every server slot: a reset is retried
                    try:
                        stream = await host.open_stream(server, KAD)
                        await stream.write(wire.find_node_request(b"\x00\x24" + os.urandom(36)))
                        await _answer(stream)
                        await stream.reset()
                        out["find_node"] = True
                        key = b"\x12\x20" + os.urandom(32)
                        stream = await host.open_stream(server, KAD)
                        await stream.write(wire.add_provider_request(key, host.peer_id_bytes, host.listen_addrs()))
                        await stream.write(wire.get_providers_request(key))
                        got = wire.parse_answer(
                            await _answer(stream), expect=records.KadMessage.GET_PROVIDERS, sender=b""
                        )
                        await stream.reset()
                        out["get_providers"] = True
                        out["own_record_stored"] = any(p.peer_id == host.peer_id_bytes for p in got.providers)
                        out["attempts"] = attempt + 1
                        break
                    except StreamError:
                        await trio.sleep(0.2)
    except Exception as e:  # noqa: BLE001 - reported
        out["error"] = f"{type(e).__name__}: {e}"[:200]
    out["seconds"] = round(time.monotonic() - started, 2)
    return out


async def run(server: str, addr: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    flood = Flood(server, addr, args)
    start = vm_mb(pid)
    samples: list[dict[str, Any]] = [{"t": 0, **start}]
    probes: list[dict[str, Any]] = []
    began = trio.current_time()
    until = began + args.seconds

    async def sampler() -> None:
        for tick in itertools.count(1):
            await trio.sleep_until(began + tick * SAMPLE_EVERY)
            samples.append({"t": round(trio.current_time() - began), **vm_mb(pid), "sent": dict(flood.counts)})

    async def prober() -> None:
        for tick in itertools.count(1):
            await trio.sleep_until(began + tick * SAMPLE_EVERY)
            probes.append({"t": round(trio.current_time() - began), **await probe(server, addr)})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sampler)
        nursery.start_soon(prober)
        async with trio.open_nursery() as workers:
            for _ in range(args.connections):
                workers.start_soon(flood.worker, until)
        nursery.cancel_scope.cancel()
    flooded = round(trio.current_time() - began, 1)
    samples.append({"t": flooded, **vm_mb(pid)})
    await trio.sleep(2)
    after = await probe(server, addr)
    end = vm_mb(pid)
    samples.append({"t": round(trio.current_time() - began, 1), **end})
    cap = round(start["VmRSS"] + bounds.PROVIDER_MEMORY_MB + args.slack_mb, 1)
    peak = max(s["VmRSS"] for s in samples)
    return {
        "seconds": flooded,
        "identities": len(flood.used),
        "connections_at_once": args.connections,
        "sent": {**flood.counts, "connect_failures": flood.connect_failures},
        "rss_mb": samples,
        "rss_start_mb": start["VmRSS"],
        "rss_end_mb": end["VmRSS"],
        "rss_peak_sampled_mb": peak,
        "hwm_end_mb": end["VmHWM"],
        "cap_mb": cap,
        "under_cap": end["VmHWM"] <= cap,
        "probes_during": probes,
        "answers_after": after,
    }


def _start_server(log_dir: Path) -> tuple[PeerProcess, str, str]:
    home = log_dir / "home"
    env = dict(os.environ, P2PSHARE_HOME=str(home), P2PSHARE_NO_DEFAULT_BOOTSTRAP="1", PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "p2pshare", "node", "--dht-server", "--no-default-bootstrap"]
    proc = PeerProcess(
        [*argv, "--listen", "/ip4/127.0.0.1/tcp/0", "--json"], name="dht-server", env=env, cwd=ROOT, log_dir=log_dir
    )
    first = proc.wait_for("node", timeout=60)[-1]
    addr = next(a for a in first["addrs"] if a.startswith("/ip4/127.0.0.1/")).split("/p2p/")[0]
    return proc, first["peer_id"], addr


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--identities", type=int, default=200)
    p.add_argument("--connections", type=int, default=16, help="identities flooding at once")
    p.add_argument("--session", type=float, default=3.0, help="seconds one identity floods before the next")
    p.add_argument("--addrs", type=int, default=64, help="provider addresses per ADD_PROVIDER")
    p.add_argument("--record-addrs", type=int, default=1000, help="addresses in each signed peer record")
    p.add_argument("--slack-mb", type=float, default=40.0, help="RSS allowed beyond the provider records")
    p.add_argument("--server", nargs=2, metavar=("PEER_ID", "ADDR"), help="flood this server instead")
    p.add_argument("--pid", type=int, help="the --server's process (for its memory)")
    p.add_argument("--json", action="store_true", help="one JSON line (default: indented)")
    args = p.parse_args()
    if args.server and not args.pid:
        p.error("--server needs --pid")
    with contextlib.ExitStack() as stack:
        if args.server:
            server, addr = args.server
            pid = args.pid
        else:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dht-flood-")))
            proc, server, addr = _start_server(log_dir)
            stack.callback(proc.stop)
            pid = proc.pid
            time.sleep(1.0)  # let start-up allocations settle before the first reading
        result = trio.run(run, server, addr, pid, args)
    print(json.dumps(result, indent=None if args.json else 1))
    return 0 if result["under_cap"] and result["answers_after"]["get_providers"] else 1


if __name__ == "__main__":
    sys.exit(main())
