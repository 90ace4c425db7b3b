"""``scripts/natlab delay-check``: what a delay line really gives, as JSON.

Builds ``a -- inet -- b`` (``wan.line_plan``), puts a delay line on
``inet`` and measures from ``a`` to ``b`` with ``wanprobe.py``: UDP RTT
median/p90 and loss over many probes, TCP connect times, one bulk TCP
transfer. The delay line's own counters (drops per cause, CPU seconds) are in
the output too, so a figure that is off can be told from a lab that is
overloaded. Exit 0 when the median RTT is within 15% of the target and the
bulk transfer completed, else 1 (the tolerance has a 2 ms floor).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .netns import Lab, LabError, wait_line
from .wan import B_IP, add_delay, line_plan

WANPROBE = str(Path(__file__).with_name("wanprobe.py"))
PORT = 9000
TOLERANCE = 0.15
MIN_SLACK_MS = 2.0


def _bounded(kind: type[float] | type[int], lo: float, hi: float) -> Any:
    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad number {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be {lo:g}..{hi:g}")
        return v

    return parse


def add_parser(sub: Any, size: Any) -> None:
    p = sub.add_parser("delay-check", help="measure RTT, jitter, loss and throughput through a delay line")
    p.add_argument("--rtt", type=_bounded(float, 0, 5000), default=80.0, help="target RTT, ms (default 80)")
    p.add_argument("--jitter", type=_bounded(float, 0, 1000), default=5.0, help="per one-way trip, ms (default 5)")
    p.add_argument("--dist", choices=("uniform", "normal"), default="uniform", help="jitter distribution")
    p.add_argument("--loss", type=_bounded(float, 0, 0.5), default=0.005, help="per one-way trip (default 0.005)")
    p.add_argument("--rate", type=_bounded(float, 0, 1e5), default=0.0, help="Mbit/s per direction (0 = none)")
    p.add_argument("--seed", type=int, default=1, help="delay line RNG seed (default 1)")
    p.add_argument("--count", type=_bounded(int, 10, 20000), default=2000, help="UDP probes (default 2000)")
    p.add_argument("--bulk", type=size, default=size("8m"), help="bulk TCP transfer size (default 8m)")


def _json_line(r: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    for line in reversed(r.stdout.splitlines()):
        try:
            out = json.loads(line)
        except ValueError:
            continue
        if isinstance(out, dict):
            return out
    raise LabError(f"natlab: {what} printed no result: {(r.stderr.strip() or r.stdout.strip())[-300:]}")


def measure(lab: Lab, count: int, bulk_bytes: int, interval: float = 0.002) -> dict[str, Any]:
    """UDP RTT/loss/order, TCP connects and one bulk transfer from ``a`` to ``b``."""
    py, to = sys.executable, f"{B_IP}:{PORT}"
    timeout = count * interval + 30
    rtt = _json_line(
        lab.run(
            "a", [py, WANPROBE, "udp-rtt", "--to", to, "--count", str(count), "--interval", str(interval)], timeout
        ),
        "udp-rtt",
    )
    conn = _json_line(lab.run("a", [py, WANPROBE, "tcp-connect", "--to", to, "--count", "20"], 60), "tcp-connect")
    blk = _json_line(lab.run("a", [py, WANPROBE, "bulk", "--to", to, "--bytes", str(bulk_bytes)], 60), "bulk")
    return {"udp": rtt, "tcp_connect": conn, "bulk": blk}


def start_server(lab: Lab, duration: float = 600.0) -> subprocess.Popen[bytes]:
    """``wanprobe serve`` on ``b``, ready to answer; teardown ends it."""
    proc = lab.spawn(
        "b",
        [sys.executable, WANPROBE, "serve", "--port", str(PORT), "--for", str(duration)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    if b'"ready"' not in wait_line(proc.stdout, time.monotonic() + 10):
        raise LabError("natlab: the probe server on b did not start")
    return proc


def run_check(
    rtt_ms: float,
    jitter_ms: float,
    loss: float,
    *,
    dist: str = "uniform",
    rate_mbit: float = 0.0,
    seed: int = 1,
    count: int = 2000,
    bulk_bytes: int = 8 << 20,
    prefix: str | None = None,
    family: str = "nl",
) -> dict[str, Any]:
    with Lab(line_plan(), prefix, family) as lab:
        start_server(lab)
        line = add_delay(
            lab,
            "inet",
            "t0",
            "t1",
            rtt_ms=rtt_ms,
            jitter_ms=jitter_ms,
            loss=loss,
            dist=dist,
            rate=rate_mbit * 1e6 / 8,
            seed=seed,
        )
        t0 = time.monotonic()
        got = measure(lab, count, bulk_bytes)
        report = line.close()
        wall = time.monotonic() - t0
    rtt = got["udp"].get("rtt_ms", {})
    median = rtt.get("median")
    # A floor under the tolerance: a near-zero target is off by the probes' own ~0.2 ms.
    slack = max(TOLERANCE * rtt_ms, MIN_SLACK_MS)
    ok = median is not None and abs(median - rtt_ms) <= slack and got["bulk"].get("ok")
    return {
        "ok": bool(ok),
        "target": {"rtt_ms": rtt_ms, "jitter_ms": jitter_ms, "dist": dist, "loss": loss, "rate_mbit": rate_mbit},
        "rtt_ms": {
            "median": median,
            "p90": rtt.get("p90"),
            "p10": rtt.get("p10"),
            "min": rtt.get("min"),
            "max": rtt.get("max"),
            "stdev": rtt.get("stdev"),
        },
        "tcp_connect_ms": got["tcp_connect"].get("connect_ms", {}).get("median"),
        "loss": {
            "round_trip": got["udp"].get("round_trip_loss"),
            "one_way_est": got["udp"].get("one_way_loss_est"),
            "probes": got["udp"].get("sent"),
        },
        "throughput_MBps": got["bulk"].get("MBps"),
        "bulk": got["bulk"],
        "order": {k: got["udp"].get(k) for k in ("reordered_within_flow", "reordered_across_flows", "flows")},
        "delay_line": {k: report.get(k) for k in ("counters", "kernel_drops", "seed", "cpu_s", "wall_s")},
        "measure_wall_s": round(wall, 2),
        "prefix": lab.prefix,
    }


def run(args: argparse.Namespace) -> int:
    family = "dl" if (args.prefix or "").startswith("dl") else "nl"
    out = run_check(
        args.rtt,
        args.jitter,
        args.loss,
        dist=args.dist,
        rate_mbit=args.rate,
        seed=args.seed,
        count=args.count,
        bulk_bytes=args.bulk,
        prefix=args.prefix,
        family=family,
    )
    print(json.dumps(out, indent=1))
    return 0 if out["ok"] else 1
