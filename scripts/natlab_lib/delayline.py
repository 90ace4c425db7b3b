"""A userspace delay line for the lab's "internet": latency, jitter, loss, rate.

Why userspace: this kernel has no ``sch_netem``, so ``tc`` cannot delay or
drop packets. Instead policy routing in a router namespace sends forwarded
packets into a TUN device; this program reads them, holds each until its
departure time and writes it back into the same device, where the kernel
takes it as a packet received on the TUN and routes it (main table) to its
real destination.

Why one TUN per direction (``--dev A --dev B``): the device a packet is read
from says which way it travels, with no address parsing and no guessing
about which subnet is on which side. Each direction gets its own queue,
rate limiter and loss draws, as the two directions of a real link do: a
bulk upload cannot fill the queue that the returning ACKs wait in, and a
rate limit applies to each direction separately. ``wan.add_delay`` sets up
the rules: ``iif <side A iface> lookup <table of dev A>`` and the same for B;
packets written back arrive with ``iif`` = the TUN, match no rule and take
the main table, so they cannot loop.

The model per direction, in order: random loss (``--loss``); the drop-tail
buffer of the rate limiter (``--rate`` bytes/s, at most ``--buffer-ms`` of
backlog); propagation ``--delay-ms`` plus jitter (uniform in +-J, or normal
with sigma J clipped to +-2J); the hard bound ``--limit`` on packets held
(drops when full). Jitter never reorders one flow (IPv4/IPv6 addresses,
protocol and TCP/UDP ports): a packet leaves no earlier than the previous
packet of its flow, so a TCP transfer sees varying delay, not wholesale
reordering and spurious retransmits. Different flows may overtake each other.

Why one thread with ``select``: the per-packet work is a few dict and heap
operations; one thread avoids locks and ``select`` wakes with microsecond
timeouts (``poll``/``epoll`` round to milliseconds). Loss and jitter come
from one ``random.Random`` per direction seeded from ``--seed``, so the same
seed and the same packets give the same drops and delays.

Standalone (stdlib only): started with ``ip netns exec`` in the router
namespace. Prints ``{"ready": ...}`` once the devices exist, and its counters
as one JSON line on exit (SIGTERM, SIGINT or SIGHUP). The TUN devices are not
persistent: they vanish when it exits.
"""

from __future__ import annotations

import argparse
import fcntl
import heapq
import json
import os
import random
import select
import signal
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
READ_BATCH = 64  # packets read from one device before due packets get a look
PRUNE_EVERY = 4096  # flows older than "now" are forgotten this often (packets)
MAX_WAIT = 0.5  # longest sleep with nothing queued; signals wake it anyway


@dataclass(frozen=True)
class Shape:
    """One direction's link model; times in seconds, ``rate`` in bytes/s (0 = none)."""

    delay: float = 0.0
    jitter: float = 0.0
    dist: str = "uniform"
    loss: float = 0.0
    rate: float = 0.0
    buffer: float = 0.1
    limit: int = 8192


@dataclass
class Counters:
    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    lost: int = 0  # random loss
    buffer_drops: int = 0  # rate limiter backlog over --buffer-ms
    queue_drops: int = 0  # --limit packets already held
    write_errors: int = 0
    max_held: int = 0
    held_at_exit: int = 0


def flow_key(pkt: bytes) -> bytes:
    """Addresses, protocol and (TCP/UDP, unfragmented) ports: what must stay in order."""
    version = pkt[0] >> 4 if pkt else 0
    if version == 4 and len(pkt) >= 20:
        proto = pkt[9]
        ihl = (pkt[0] & 15) * 4
        fragment = (pkt[6] & 0x3F) or pkt[7]  # MF flag or an offset
        if proto in (6, 17) and not fragment:
            return pkt[9:10] + pkt[12:20] + pkt[ihl : ihl + 4]
        return pkt[9:10] + pkt[12:20]
    if version == 6 and len(pkt) >= 40:
        nxt = pkt[6]
        if nxt in (6, 17):
            return pkt[6:7] + pkt[8:44]
        return pkt[6:7] + pkt[8:40]
    return b""


class Direction:
    """Decides, per packet, drop or departure time; holds the counters of one way."""

    def __init__(self, shape: Shape, rng: random.Random) -> None:
        self.shape = shape
        self.rng = rng
        self.counters = Counters()
        self.held = 0
        self.link_free = 0.0  # when the rate limiter finishes what it has
        self.flows: dict[bytes, float] = {}  # last departure per flow (jitter only)
        self._since_prune = 0

    def _jitter(self) -> float:
        j = self.shape.jitter
        if self.shape.dist == "normal":
            return max(-2 * j, min(2 * j, self.rng.gauss(0.0, j)))
        return self.rng.uniform(-j, j)

    def admit(self, pkt: bytes, now: float) -> float | None:
        """Departure time for ``pkt`` arriving at ``now``, or None when it is dropped."""
        s, c = self.shape, self.counters
        c.rx_packets += 1
        c.rx_bytes += len(pkt)
        if s.loss and self.rng.random() < s.loss:
            c.lost += 1
            return None
        if self.held >= s.limit:
            c.queue_drops += 1
            return None
        start = now
        if s.rate:
            start = max(now, self.link_free)
            if start - now > s.buffer:
                c.buffer_drops += 1
                return None
            self.link_free = start = start + len(pkt) / s.rate
        due = start + s.delay
        if s.jitter:
            due = max(start, due + self._jitter())
            key = flow_key(pkt)
            last = self.flows.get(key)
            if last is not None and due < last:
                due = last
            self.flows[key] = due
            self._since_prune += 1
            if self._since_prune >= PRUNE_EVERY:
                self._since_prune = 0
                self.flows = {k: t for k, t in self.flows.items() if t > now}
        self.held += 1
        if self.held > c.max_held:
            c.max_held = self.held
        return due


class Line:
    """All directions' held packets in one heap ordered by (departure, arrival order).

    Equal departure times leave in arrival order, so a flow whose departures
    were clamped to its previous packet's keeps its order.
    """

    def __init__(self, directions: list[Direction]) -> None:
        self.directions = directions
        self.heap: list[tuple[float, int, int, bytes]] = []
        self.seq = 0

    def push(self, index: int, pkt: bytes, now: float) -> None:
        due = self.directions[index].admit(pkt, now)
        if due is not None:
            self.seq += 1
            heapq.heappush(self.heap, (due, self.seq, index, pkt))

    def pop_due(self, now: float) -> Iterator[tuple[int, bytes]]:
        """Packets whose time has come, oldest departure first."""
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, _, index, pkt = heapq.heappop(heap)
            self.directions[index].held -= 1
            yield index, pkt

    def next_due(self) -> float | None:
        return self.heap[0][0] if self.heap else None


def open_tun(name: str) -> int:
    """Create (or attach to) TUN device ``name`` without packet info; non-blocking fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    os.set_blocking(fd, False)
    return fd


@dataclass
class Stop:
    signum: int = 0


def pump(fds: list[int], line: Line, wake: int, stop: Stop, mtu: int) -> None:
    """Move packets between the TUN fds and ``line`` until a signal arrives on ``wake``."""
    readable = [*fds, wake]
    counters = [d.counters for d in line.directions]
    bufsize = mtu + 64
    clock = time.monotonic
    while not stop.signum:
        nxt = line.next_due()
        wait = MAX_WAIT if nxt is None else max(0.0, min(MAX_WAIT, nxt - clock()))
        ready, _, _ = select.select(readable, [], [], wait)
        for fd in ready:
            if fd == wake:
                continue
            index = fds.index(fd)
            for _ in range(READ_BATCH):
                try:
                    pkt = os.read(fd, bufsize)
                except BlockingIOError:
                    break
                line.push(index, pkt, clock())
        for index, pkt in line.pop_due(clock()):
            c = counters[index]
            try:
                os.write(fds[index], pkt)
            except OSError:
                c.write_errors += 1
                continue
            c.tx_packets += 1
            c.tx_bytes += len(pkt)


def _nonneg(kind: type[float] | type[int], hi: float) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad number {text!r}") from None
        if not 0 <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be 0..{hi:g}")
        return v

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="delayline", description="Delay, jitter, drop and rate-limit TUN traffic.")
    ap.add_argument("--dev", action="append", required=True, help="TUN device, one per direction (repeat)")
    ap.add_argument("--delay-ms", type=_nonneg(float, 10_000), default=0.0, help="one-way delay")
    ap.add_argument("--jitter-ms", type=_nonneg(float, 10_000), default=0.0, help="uniform +-J or normal sigma J")
    ap.add_argument("--dist", choices=("uniform", "normal"), default="uniform")
    ap.add_argument("--loss", type=_nonneg(float, 1.0), default=0.0, help="drop probability per packet")
    ap.add_argument("--rate", type=_nonneg(float, 1e11), default=0.0, help="bytes/s per direction (0 = no limit)")
    ap.add_argument("--buffer-ms", type=_nonneg(float, 10_000), default=100.0, help="rate limiter backlog")
    ap.add_argument("--limit", type=_nonneg(int, 1_000_000), default=8192, help="packets held per direction")
    ap.add_argument("--mtu", type=_nonneg(int, 65535), default=1500, help="largest packet read")
    ap.add_argument("--seed", type=int, default=None, help="RNG seed (default: random, printed)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if len(set(a.dev)) != len(a.dev):
        print("delayline: each --dev once", file=sys.stderr)
        return 2
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)
    shape = Shape(
        delay=a.delay_ms / 1000,
        jitter=a.jitter_ms / 1000,
        dist=a.dist,
        loss=a.loss,
        rate=a.rate,
        buffer=a.buffer_ms / 1000,
        limit=max(1, a.limit),
    )
    # One stream per direction, so one direction's packets never shift the other's draws.
    line = Line([Direction(shape, random.Random(seed * 1000 + i)) for i in range(len(a.dev))])
    stop = Stop()
    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w)

    def on_signal(signum: int, _frame: object) -> None:
        stop.signum = signum

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        fds = [open_tun(name) for name in a.dev]
    except OSError as e:
        print(f"delayline: cannot create TUN devices {a.dev}: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"ready": True, "devs": a.dev, "seed": seed, "pid": os.getpid()}), flush=True)
    t0, cpu0 = time.monotonic(), time.process_time()
    try:
        pump(fds, line, r, stop, a.mtu)
    finally:
        for d in line.directions:
            d.counters.held_at_exit = d.held
        for fd in fds:
            os.close(fd)
        report = {
            "counters": {name: asdict(d.counters) for name, d in zip(a.dev, line.directions, strict=True)},
            "seed": seed,
            "signal": stop.signum,
            "wall_s": round(time.monotonic() - t0, 3),
            "cpu_s": round(time.process_time() - cpu0, 3),
        }
        print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
