"""The delay line in real namespaces: ``a -- inet -- b`` with a TUN pair on ``inet``.

Prefixes are of the ``dl`` family, so other engineers' natlab runs and
cleanups on the same machine cannot touch them. Figures are statistical
but seeded, with bounds several standard deviations wide; each test takes
a few seconds.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from natlab_lib.delaycheck import PORT, WANPROBE, start_server
from natlab_lib.netns import Lab
from natlab_lib.wan import B_IP, DelayLine, add_delay, line_plan

from .conftest import leftovers, natlab

pytestmark = pytest.mark.natlab
TO = f"{B_IP}:{PORT}"


def probe(lab: Lab, *args: str, timeout: float = 30) -> dict[str, Any]:
    r = lab.run("a", [sys.executable, WANPROBE, *args, "--to", TO], timeout)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert isinstance(out, dict)
    return out


def rtt(lab: Lab, count: int, interval: float, flows: int = 16, wait: float = 0.5) -> dict[str, Any]:
    return probe(
        lab, "udp-rtt", "--count", str(count), "--interval", str(interval), "--flows", str(flows), "--wait", str(wait)
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def dl_prefix() -> str:
    for _ in range(50):
        p = "dl" + secrets.token_hex(2)
        if not leftovers(p):
            return p
    raise RuntimeError("no free dl prefix")


@pytest.fixture(scope="module")
def lab(lab_ok: None) -> Iterator[Lab]:
    with Lab(line_plan(), dl_prefix(), "dl") as built:
        start_server(built, duration=300)
        yield built
    assert not leftovers(built.prefix)


@pytest.fixture
def delay(lab: Lab) -> Iterator[list[DelayLine]]:
    """Delay lines a test adds; closed after it even when it fails."""
    lines: list[DelayLine] = []
    yield lines
    for line in lines:
        line.close()


def test_rtt_median_jitter_and_tcp_connect_time(lab: Lab, delay: list[DelayLine]) -> None:
    delay.append(add_delay(lab, "inet", "t0", "t1", rtt_ms=80, jitter_ms=5, loss=0, seed=7))
    got = rtt(lab, 500, 0.003)
    ms = got["rtt_ms"]
    assert got["received"] == 500
    assert 68 <= ms["median"] <= 92, ms  # +-15% of 80
    # Two one-way trips of +-5 ms each: a p10..p90 spread of ~11 ms, nothing past +-10.
    # A busy machine only adds delay, so the low side (p10 ~74.5) is what shows jitter.
    assert ms["p10"] <= 77 and ms["p90"] - ms["p10"] >= 5, ms
    assert ms["min"] >= 69 and ms["max"] <= 130, ms  # the top leaves room for a busy machine
    conn = probe(lab, "tcp-connect", "--count", "20")
    assert conn["failed"] == 0
    assert 68 <= conn["connect_ms"]["median"] <= 92, conn
    delay.pop().close()

    delay.append(add_delay(lab, "inet", "t0", "t1", rtt_ms=80, jitter_ms=0, loss=0, seed=7))
    flat = rtt(lab, 200, 0.003)["rtt_ms"]
    # Nothing leaves early without jitter; the top may spread with the machine's load.
    assert flat["min"] >= 79.5 and flat["median"] <= 86, f"without jitter nothing is early: {flat}"


def test_loss_matches_configured_and_is_seeded(lab: Lab, delay: list[DelayLine]) -> None:
    reports = []
    for _ in range(2):
        line = add_delay(lab, "inet", "t0", "t1", rtt_ms=10, jitter_ms=0, loss=0.03, seed=42)
        delay.append(line)
        got = rtt(lab, 2000, 0.001)
        reports.append(line.close())
        # Binomial(2000, 0.03): mean 60, sd 7.6 per direction; round trip 1-(0.97)^2 = 5.9%.
        assert 0.035 <= got["round_trip_loss"] <= 0.085, got
        assert 0.015 <= got["one_way_loss_est"] <= 0.045, got
    ab = [r["counters"]["dly0a"] for r in reports]
    assert all(c["rx_packets"] == 2000 for c in ab), ab
    assert 30 <= ab[0]["lost"] <= 95, ab
    assert ab[0]["lost"] == ab[1]["lost"], "same seed, same packets: same drops"
    assert reports[0]["seed"] == 42


def test_jitter_never_reorders_a_flow(lab: Lab, delay: list[DelayLine]) -> None:
    delay.append(add_delay(lab, "inet", "t0", "t1", rtt_ms=40, jitter_ms=10, loss=0, seed=3))
    one = rtt(lab, 400, 0.0005, flows=1)
    assert one["received"] == 400 and one["reordered_within_flow"] == 0, one
    many = rtt(lab, 400, 0.0005, flows=16)
    assert many["received"] == 400 and many["reordered_within_flow"] == 0, many
    assert many["reordered_across_flows"] > 0, "flows should overtake each other: is the jitter there?"


def test_tcp_bulk_through_a_jittery_lossy_line(lab: Lab, delay: list[DelayLine]) -> None:
    line = add_delay(lab, "inet", "t0", "t1", rtt_ms=80, jitter_ms=5, loss=0.005, seed=5)
    delay.append(line)
    got = probe(lab, "bulk", "--bytes", str(4 << 20), timeout=20)
    assert got["ok"] and got["bytes"] == 4 << 20, got
    counters = line.close()["counters"]["dly0a"]
    assert counters["lost"] > 0 and counters["write_errors"] == 0, counters
    assert counters["rx_bytes"] >= 4 << 20


def test_rate_limit_caps_throughput(lab: Lab, delay: list[DelayLine]) -> None:
    line = add_delay(lab, "inet", "t0", "t1", rtt_ms=20, jitter_ms=0, loss=0, rate=2e6, seed=1)
    delay.append(line)
    got = probe(lab, "bulk", "--bytes", str(3 << 20), timeout=20)
    assert got["ok"], got
    assert 1.2 <= got["MBps"] <= 2.05, got


def test_close_restores_the_direct_path_and_reports(lab: Lab, delay: list[DelayLine]) -> None:
    line = add_delay(lab, "inet", "t0", "t1", rtt_ms=60, jitter_ms=0, loss=0, seed=1)
    delay.append(line)
    assert rtt(lab, 50, 0.002)["rtt_ms"]["median"] >= 55
    report = line.close()
    assert report["exit"] == 0 and report["signal"] == signal.SIGTERM, report
    assert report["counters"]["dly0a"]["tx_packets"] == 50 and not _alive(line.pid)
    assert rtt(lab, 50, 0.002)["rtt_ms"]["median"] < 10


def test_a_dead_delay_line_makes_the_path_dark(lab: Lab, delay: list[DelayLine]) -> None:
    line = add_delay(lab, "inet", "t0", "t1", rtt_ms=20, jitter_ms=0, loss=0, seed=1)
    delay.append(line)
    os.kill(line.pid, signal.SIGKILL)
    line.proc.wait(5)
    assert rtt(lab, 20, 0.005)["received"] == 0, "traffic went around a dead delay line"


def test_teardown_on_failure_leaves_nothing(lab_ok: None) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with Lab(line_plan(), dl_prefix(), "dl") as own:
            line = add_delay(own, "inet", "t0", "t1", rtt_ms=80, jitter_ms=5, loss=0.005, seed=1)
            assert _alive(line.pid)
            raise RuntimeError("boom")
    assert not leftovers(own.prefix)
    assert not _alive(line.pid)


def test_delay_check_cli_prints_the_figures(lab_ok: None) -> None:
    prefix = dl_prefix()
    r = natlab(
        "delay-check",
        "--rtt",
        "80",
        "--jitter",
        "5",
        "--loss",
        "0.005",
        "--count",
        "500",
        "--bulk",
        "2m",
        "--prefix",
        prefix,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] and 68 <= out["rtt_ms"]["median"] <= 92, out
    assert out["rtt_ms"]["p90"] > out["rtt_ms"]["median"]
    assert out["bulk"]["ok"] and out["throughput_MBps"] > 0
    assert out["loss"]["probes"] == 500 and out["order"]["reordered_within_flow"] == 0
    assert not leftovers(prefix)
