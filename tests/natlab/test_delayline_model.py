"""The delay line's link model on a fake clock: no root, no TUN, exact numbers."""

from __future__ import annotations

import random
import socket
import struct

import pytest
from natlab_lib.delayline import Direction, Line, Shape, flow_key


def udp4(sport: int, dport: int = 9000, seq: int = 0, frag: int = 0) -> bytes:
    """A minimal IPv4/UDP packet; ``seq`` rides in the payload, ``frag`` in flags/offset."""
    payload = struct.pack("!I", seq)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        28 + len(payload),
        0,
        frag,
        64,
        17,
        0,
        socket.inet_aton("203.0.113.2"),
        socket.inet_aton("198.51.100.2"),
    )
    return ip + struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def seq_of(pkt: bytes) -> int:
    return int(struct.unpack("!I", pkt[-4:])[0])


def drain(line: Line) -> list[bytes]:
    return [pkt for _, pkt in line.pop_due(float("inf"))]


def test_flow_key_separates_ports_and_ignores_them_in_fragments() -> None:
    assert flow_key(udp4(1000)) == flow_key(udp4(1000, seq=5))
    assert flow_key(udp4(1000)) != flow_key(udp4(1001))
    # A later fragment has no UDP header: ports must not be read from it.
    assert flow_key(udp4(1000, frag=0x0010)) == flow_key(udp4(2000, frag=0x0010))
    v6 = bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + bytes(range(32)) + struct.pack("!HH", 5, 6)
    assert flow_key(v6) != flow_key(v6[:40] + struct.pack("!HH", 5, 7))
    assert flow_key(b"") == b""


def test_fixed_delay_without_jitter() -> None:
    d = Direction(Shape(delay=0.04), random.Random(1))
    assert d.admit(udp4(1), 10.0) == pytest.approx(10.04)
    assert d.counters.rx_packets == 1 and d.held == 1


@pytest.mark.parametrize("dist,bound", [("uniform", 1.0), ("normal", 2.0)])
def test_jitter_is_bounded_and_visible(dist: str, bound: float) -> None:
    d = Direction(Shape(delay=0.04, jitter=0.005, dist=dist), random.Random(2))
    # A new flow per packet, so the per-flow order clamp never applies.
    delays = [d.admit(udp4(1 + i % 60000, seq=i), float(i)) - i for i in range(5000)]  # type: ignore[operator]
    assert min(delays) >= 0.04 - bound * 0.005 - 1e-9
    assert max(delays) <= 0.04 + bound * 0.005 + 1e-9
    assert max(delays) - min(delays) > 0.008
    assert sum(delays) / len(delays) == pytest.approx(0.04, abs=0.0005)


def test_jitter_never_reorders_a_flow_but_flows_overtake_each_other() -> None:
    line = Line([Direction(Shape(delay=0.02, jitter=0.01), random.Random(3))])
    for i in range(2000):  # two interleaved flows, a packet every 0.1 ms
        line.push(0, udp4(1000 + i % 2, seq=i), i * 0.0001)
    out = drain(line)
    assert len(out) == 2000
    for port in (1000, 1001):
        seqs = [seq_of(p) for p in out if p[20:22] == struct.pack("!H", port)]
        assert seqs == sorted(seqs)
    merged = [seq_of(p) for p in out]
    assert merged != sorted(merged), "two flows should overtake each other under 10 ms jitter"


def test_same_seed_same_losses_and_delays() -> None:
    def run(seed: int) -> list[float | None]:
        d = Direction(Shape(delay=0.04, jitter=0.005, loss=0.1), random.Random(seed))
        return [d.admit(udp4(i + 1), i * 0.01) for i in range(500)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_loss_rate_matches_probability() -> None:
    d = Direction(Shape(loss=0.1, limit=100_000), random.Random(4))
    for i in range(20000):
        d.admit(udp4(1), i * 0.001)
    assert 1700 <= d.counters.lost <= 2300
    assert d.counters.rx_packets == 20000 and d.held == 20000 - d.counters.lost


def test_queue_limit_drops_and_counts() -> None:
    line = Line([Direction(Shape(delay=1.0, limit=10), random.Random(5))])
    for i in range(15):
        line.push(0, udp4(1, seq=i), 0.0)
    d = line.directions[0]
    assert d.held == 10 and d.counters.queue_drops == 5 and d.counters.max_held == 10
    assert [seq_of(p) for p in drain(line)] == list(range(10))
    assert d.held == 0


def test_rate_limit_serialises_and_drops_over_the_buffer() -> None:
    line = Line([Direction(Shape(delay=0.05, rate=320.0, buffer=0.35), random.Random(6))])
    pkt = udp4(1)  # 32 bytes: 0.1 s at 320 B/s
    for _ in range(8):
        line.push(0, pkt, 0.0)
    d = line.directions[0]
    dues = sorted(due for due, *_ in line.heap)
    # Start times 0, 0.1, 0.2, 0.3 fit the 0.35 s buffer; 0.4.. are dropped.
    assert dues == pytest.approx([0.15, 0.25, 0.35, 0.45])
    assert d.counters.buffer_drops == 4
    assert list(line.pop_due(0.3)) and d.held == 2
