"""Put a delay line (``delayline.py``) on a router namespace's path between two sides.

``add_delay(lab, "inet", ["t0"], ["t1"], rtt_ms=80, jitter_ms=5, loss=0.005)``
starts the delay line inside the router namespace, which creates two TUN
devices (``dly<n>a`` carries what arrives on side A's interfaces, ``dly<n>b``
what arrives on side B's), then routes packets arriving on each side's
interfaces through that side's device:

    ip rule add iif <A iface> lookup <table A>     table A: default dev dly<n>a
    ip rule add iif <B iface> lookup <table B>     table B: default dev dly<n>b

Packets written back by the delay line arrive with ``iif dly<n>x``, match
neither rule and take the main table to their destination. Each table also
holds a blackhole default route of a worse metric: if the delay line dies,
its device and the route through it vanish and the path goes dark instead
of silently fast, so a latency test cannot pass without latency.

Semantics: ``rtt_ms / 2`` one-way delay each way; ``jitter_ms`` and ``loss``
apply to each one-way trip (a round trip loses about ``2 * loss``);
``rate`` is bytes/s per direction. What the router delivers to itself
(``local`` table, rule 0) and what it originates is not delayed. Each pass
through the TUN is a routing hop, so the router decrements TTL twice. It must
not be a NAT router: conntrack decides the NAT binding on the first pass
(out to the TUN), so ``masquerade oifname wan`` would never apply.

The handle is torn down with the topology (``Lab.spawn`` registers the
process; the devices, rules and tables vanish with the namespace);
``close()`` removes it early, restores the direct path and returns the
counters.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .netns import Lab, LabError, _must, _run, wait_line
from .topology import CORE, Link, Plan

DELAYLINE = str(Path(__file__).with_name("delayline.py"))
TABLE_BASE = 7100  # delay line n uses tables 7100+2n (side A) and 7101+2n (side B)
RULE_PREF = 1000  # after "local" (0), before "main" (32766)
MAX_LINES = 16  # delay lines per router namespace
TXQUEUELEN = 10000  # packets the kernel queues for the TUN while we are busy
READY_TIMEOUT = 10.0


@dataclass
class DelayLine:
    """A running delay line: ``close()`` stops it and returns its counters."""

    lab: Lab
    router: str
    index: int
    rules: list[str]
    proc: subprocess.Popen[bytes]
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] | None = None

    @property
    def devs(self) -> tuple[str, str]:
        return f"dly{self.index}a", f"dly{self.index}b"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self, timeout: float = 5.0) -> dict[str, Any]:
        """Direct path again, delay line stopped; its exit report (counters per device)."""
        if self.report is not None:
            return self.report
        ns = self.lab.ns(self.router)
        kernel_drops = self._kernel_drops(ns)
        for rule in self.rules:  # first, so nothing is routed into vanishing devices
            _run(["ip", "-n", ns, "rule", "del", *rule.split()])
        for table in (TABLE_BASE + 2 * self.index, TABLE_BASE + 2 * self.index + 1):
            _run(["ip", "-n", ns, "route", "flush", "table", str(table)])
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.lab.stop(self.proc, grace=0.1)
            out, err = self.proc.communicate(timeout=timeout)
        self.report = {
            "exit": self.proc.returncode,
            "stderr": err.decode(errors="replace")[-2000:],
            "kernel_drops": kernel_drops,
        }
        for line in out.decode(errors="replace").splitlines():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and "counters" in msg:
                self.report.update(msg)
        return self.report

    def _kernel_drops(self, ns: str) -> dict[str, int]:
        """Packets the kernel dropped because the TUN queue was full: the delay line fell behind."""
        out: dict[str, int] = {}
        for dev in self.devs:
            try:
                stats = json.loads(_run(["ip", "-n", ns, "-j", "-s", "link", "show", "dev", dev]).stdout)
                out[dev] = int(stats[0]["stats64"]["tx"]["dropped"])
            except (ValueError, LookupError, TypeError):
                continue
        return out


def _free_index(ns: str) -> int:
    links = _run(["ip", "-n", ns, "-o", "link", "show"]).stdout
    for n in range(MAX_LINES):
        if f" dly{n}a:" not in links and f" dly{n}a@" not in links:
            return n
    raise LabError(f"natlab: more than {MAX_LINES} delay lines in {ns}")


def add_delay(
    lab: Lab,
    router: str,
    side_a: str | Sequence[str],
    side_b: str | Sequence[str],
    *,
    rtt_ms: float = 80.0,
    jitter_ms: float = 5.0,
    loss: float = 0.005,
    dist: str = "uniform",
    rate: float = 0.0,
    buffer_ms: float = 100.0,
    limit: int = 8192,
    seed: int | None = None,
) -> DelayLine:
    """Delay, jitter and drop what ``router`` forwards between two sets of its interfaces."""
    a_ifs = [side_a] if isinstance(side_a, str) else list(side_a)
    b_ifs = [side_b] if isinstance(side_b, str) else list(side_b)
    if not a_ifs or not b_ifs or set(a_ifs) & set(b_ifs):
        raise LabError("natlab: add_delay wants two disjoint, non-empty sets of interfaces")
    ns = lab.ns(router)
    n = _free_index(ns)
    dev_a, dev_b = f"dly{n}a", f"dly{n}b"
    argv = [sys.executable, DELAYLINE, "--dev", dev_a, "--dev", dev_b]
    argv += ["--delay-ms", f"{rtt_ms / 2:g}", "--jitter-ms", f"{jitter_ms:g}", "--dist", dist]
    argv += ["--loss", f"{loss:g}", "--rate", f"{rate:g}", "--buffer-ms", f"{buffer_ms:g}", "--limit", str(limit)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    proc = lab.spawn(router, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    ready = wait_line(proc.stdout, time.monotonic() + READY_TIMEOUT)
    try:
        hello = json.loads(ready)
    except ValueError:
        hello = {}
    table_a, table_b = TABLE_BASE + 2 * n, TABLE_BASE + 2 * n + 1
    rules = [f"iif {i} lookup {table_a} pref {RULE_PREF}" for i in a_ifs]
    rules += [f"iif {i} lookup {table_b} pref {RULE_PREF}" for i in b_ifs]
    line = DelayLine(
        lab, router, n, rules, proc, int(hello.get("seed", -1)), {"rtt_ms": rtt_ms, "jitter_ms": jitter_ms}
    )
    line.params.update(loss=loss, dist=dist, rate=rate, buffer_ms=buffer_ms, limit=limit, seed=line.seed)
    if not hello.get("ready"):
        report = line.close()
        raise LabError(f"natlab: delay line in {ns} did not start: {report['stderr'].strip()[-300:] or ready!r}")
    batch = []
    for dev, table in ((dev_a, table_a), (dev_b, table_b)):
        batch += [
            f"link set {dev} txqueuelen {TXQUEUELEN}",
            f"link set {dev} up",
            f"route add default dev {dev} table {table}",
            f"route add blackhole default metric 4000 table {table}",
        ]
    batch += [f"rule add {r}" for r in rules]
    sysctls = ["net.ipv4.conf.all.rp_filter=0"]  # written-back packets arrive on the TUN
    sysctls += [f"net.ipv4.conf.{d}.rp_filter=0" for d in (dev_a, dev_b)]
    sysctls += [f"net.ipv6.conf.{d}.disable_ipv6=1" for d in (dev_a, dev_b)]  # no RS/MLD chatter
    try:
        _must(["ip", "netns", "exec", ns, "sysctl", "-qw", *sysctls])
        _must(["ip", "-n", ns, "-batch", "-"], "\n".join(batch) + "\n")
    except LabError:
        line.close()
        raise
    return line


def line_plan() -> Plan:
    """Two end hosts ``a`` (203.0.113.2) and ``b`` (198.51.100.2) on either side of ``inet``.

    The smallest topology with a routing hop in the middle, for measuring the
    delay line itself: ``inet``'s ``t0`` faces ``a``, ``t1`` faces ``b``.
    """
    p = Plan()
    p.namespaces += [CORE, "a", "b"]
    p.forwarding.append(CORE)
    p.links += [Link(CORE, "t0", "a", "eth0"), Link(CORE, "t1", "b", "eth0")]
    p.ip_batches[CORE] = [
        "link set lo up",
        "link set t0 up",
        "addr add 203.0.113.1/24 dev t0",
        "link set t1 up",
        "addr add 198.51.100.1/24 dev t1",
    ]
    for role, net in (("a", "203.0.113"), ("b", "198.51.100")):
        p.ip_batches[role] = [
            "link set lo up",
            "link set eth0 up",
            f"addr add {net}.2/24 dev eth0",
            f"route add default via {net}.1",
        ]
    return p


A_IP, B_IP = "203.0.113.2", "198.51.100.2"
