"""The relay's periodic summary: the pure line, and a real relay process."""

from __future__ import annotations

import time
from pathlib import Path

from p2pshare.node.circuit.limits import RelayStats
from p2pshare.relay.stats import Snapshot, fields, stop_summary, summary
from tests.cli.helpers import Proc, start
from tests.harness import python_module


def test_the_line_counts_the_period_and_says_what_is_held() -> None:
    before = Snapshot(RelayStats(reservations_granted=5, circuits_opened=7, bytes_relayed=1 << 20))
    now = Snapshot(
        RelayStats(
            reservations_granted=17,
            reservations_refused=3,
            circuits_opened=47,
            circuits_refused=2,
            bytes_relayed=(1 << 20) + int(3.1 * (1 << 30)),
        ),
        reservations_now=10,
        circuits_now=1,
    )
    assert summary(before, now, 3600.0) == (
        "Relay, last 60 min: 12 reservations (3 refused), 40 circuits (2 refused), 3.1 GiB relayed; "
        "holding 10 reservations, 1 circuit now"
    )
    assert summary(now, now, 30.0) == (
        "Relay, last 30 s: 0 reservations, 0 circuits, 0 B relayed; holding 10 reservations, 1 circuit now"
    )
    assert fields(before, now, 3600.0)["bytes"] == int(3.1 * (1 << 30))


def test_the_stop_says_the_whole_run_and_what_it_cut() -> None:
    start = Snapshot(RelayStats())
    now = Snapshot(RelayStats(reservations_granted=3, circuits_opened=2, bytes_relayed=5 << 20), 1, 1)
    assert stop_summary(start, now, 2 * 3600 + 13 * 60 + 5) == (
        "Relay stopped after 2 h 13 min: 3 reservations, 2 circuits, 5.0 MiB relayed; 1 circuit cut by the stop."
    )
    idle = Snapshot(RelayStats())
    assert stop_summary(start, idle, 4.2) == "Relay stopped after 4 s: 0 reservations, 0 circuits, 0 B relayed."
    assert stop_summary(start, idle, 3 * 86400 + 5 * 3600).startswith("Relay stopped after 3 d 5 h:")


def test_a_real_relay_reports_a_reservation_it_granted(tmp_path: Path) -> None:
    relay = start(
        ["relay", "--json", "--listen", "/ip4/127.0.0.1/tcp/0", "--stats-every", "1"], tmp_path / "relay-home"
    )
    peer: Proc | None = None
    try:
        first = next(relay.events(timeout=60))
        assert first["event"] == "relay"
        assert first["limits"]["max_reservations"] == 128 and first["limits"]["circuit_idle"] == 1800
        peer = python_module("tests.relay._peer", first["addrs"][0], name="peer", log_dir=tmp_path / "logs")
        assert any(ev.get("relayed") for ev in peer.events(timeout=30))  # it holds a reservation
        stats = []
        deadline = time.monotonic() + 30
        for ev in relay.events(timeout=30):
            if ev.get("event") == "relay_stats":
                stats.append(ev)
                if ev["reservations_now"] == 1:
                    break
            assert time.monotonic() < deadline, stats
        assert stats[-1]["reservations_now"] == 1 and stats[-1]["circuits_now"] == 0
        assert sum(ev["reservations"] for ev in stats) == 1
        assert all(0.5 < ev["seconds"] < 5 for ev in stats)
    finally:
        if peer is not None:
            peer.stop()
        relay.close()


def test_the_limits_line_names_each_limit_and_only_the_set_ones() -> None:
    from p2pshare.node.circuit.limits import RelayLimits
    from p2pshare.relay.stats import limits_summary

    assert limits_summary(RelayLimits()) == (
        "Limits: 128 reservations (4 per peer, 8 per address, 1 h each), 64 circuits (8 to one reserved peer, "
        "8 per peer, 16 per address, 4 from one address to one peer); a circuit ends after 30 min idle "
        "(relay --help lists the flags)"
    )
    strict = RelayLimits(
        max_reservations=1,
        reservation_ttl=5400,
        circuit_duration=90,
        circuit_data=128 << 10,
        circuit_idle=0,
        circuit_rate=1 << 20,
        total_rate=10 << 20,
    )
    line = limits_summary(strict)
    assert line.startswith("Limits: 1 reservation (4 per peer, 8 per address, 1 h 30 min each)"), line
    assert (
        "a circuit ends after 90 s or 128.0 KiB each way; at most 1.0 MiB/s per circuit and 10.0 MiB/s in all" in line
    )
    assert "never ends" in limits_summary(RelayLimits(circuit_idle=0))
