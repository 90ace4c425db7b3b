"""Measure a lab path: UDP RTT and order, TCP connect time, bulk throughput.

Standalone (stdlib only; started with ``ip netns exec``), no ``ping`` binary
needed. Every command prints one JSON line; every loop is bounded by a count
and a deadline.

  serve --port P --for S       UDP echo + TCP sink (replies {"bytes", "seconds"} at EOF)
  udp-rtt --to IP:P --count N --flows F --interval S
                               N probes round-robin over F sockets (= F flows)
  tcp-connect --to IP:P --count N
  bulk --to IP:P --bytes N

Why several flows for RTT: the delay line keeps each flow in order, so a
probe may leave no earlier than the previous probe of its flow. Spread over
F sockets, one flow's probes are F * interval apart, more than the jitter
range, and the RTTs show the delay distribution rather than that clamp.
"""

from __future__ import annotations

import argparse
import json
import math
import selectors
import socket
import struct
import sys
import time

PROBE = struct.Struct("!IHd")  # seq, flow, send time
SINK_BUF = 1 << 18
MAX_CONNS = 64


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def summary(values: list[float]) -> dict[str, float]:
    """min / p10 / median / p90 / max / mean / stdev, rounded (ms in, ms out)."""
    if not values:
        return {}
    v = sorted(values)

    def pct(q: float) -> float:
        k = (len(v) - 1) * q
        lo, hi = math.floor(k), math.ceil(k)
        return v[lo] + (v[hi] - v[lo]) * (k - lo)

    mean = sum(v) / len(v)
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / len(v))
    out = {"n": len(v), "min": v[0], "p10": pct(0.1), "median": pct(0.5), "p90": pct(0.9), "max": v[-1]}
    out.update(mean=mean, stdev=sd)
    return {k: round(x, 3) for k, x in out.items()}


def serve(port: int, duration: float) -> None:
    sel = selectors.DefaultSelector()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", port))
    u.setblocking(False)
    sel.register(u, selectors.EVENT_READ, "udp")
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("0.0.0.0", port))
    t.listen(64)
    t.setblocking(False)
    sel.register(t, selectors.EVENT_READ, "listen")
    conns: dict[socket.socket, list[float]] = {}  # conn -> [bytes, accepted at]
    buf = bytearray(SINK_BUF)
    _emit({"ready": True, "port": port})
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=min(0.5, max(0.0, deadline - time.monotonic()))):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                if key.data == "udp":
                    for _ in range(64):
                        data, peer = sock.recvfrom(2048)
                        sock.sendto(data, peer)
                elif key.data == "listen":
                    conn, _ = sock.accept()
                    if len(conns) >= MAX_CONNS:
                        conn.close()
                        continue
                    conn.setblocking(False)
                    conns[conn] = [0, time.monotonic()]
                    sel.register(conn, selectors.EVENT_READ, "conn")
                else:
                    n = sock.recv_into(buf)
                    if n:
                        conns[sock][0] += n
                        continue
                    got, since = conns.pop(sock)
                    sel.unregister(sock)
                    sock.setblocking(True)
                    sock.settimeout(2.0)
                    sock.sendall(json.dumps({"bytes": int(got), "seconds": time.monotonic() - since}).encode())
                    sock.close()
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                if key.data == "conn":
                    conns.pop(sock, None)
                    sel.unregister(sock)
                    sock.close()


def udp_rtt(target: tuple[str, int], count: int, flows: int, interval: float, size: int, wait: float) -> None:
    sel = selectors.DefaultSelector()
    socks = []
    for f in range(flows):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(target)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, f)
        socks.append(s)
    pad = b"\0" * max(0, size - PROBE.size)
    rtts: list[float] = []
    last_seq = [-1] * flows
    in_flow = across = errors = 0
    top = -1
    sent = 0
    start = time.monotonic()
    end = start + count * interval + wait
    while time.monotonic() < end:
        now = time.monotonic()
        if sent < count and now >= start + sent * interval:
            try:
                socks[sent % flows].send(PROBE.pack(sent, sent % flows, now) + pad)
            except OSError:
                errors += 1
            sent += 1
            continue
        if sent >= count and len(rtts) >= count:
            break
        nxt = start + sent * interval if sent < count else end
        for key, _ in sel.select(timeout=max(0.0, min(nxt, end) - time.monotonic())):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            for _ in range(64):
                try:
                    data = sock.recv(2048)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    errors += 1
                    break
                got = time.monotonic()
                seq, flow, t0 = PROBE.unpack_from(data)
                rtts.append((got - t0) * 1000)
                if seq < last_seq[flow]:
                    in_flow += 1
                last_seq[flow] = max(last_seq[flow], seq)
                if seq < top:
                    across += 1
                top = max(top, seq)
    received = len(rtts)
    rt_loss = 1 - received / sent if sent else 0.0
    _emit(
        {
            "sent": sent,
            "received": received,
            "round_trip_loss": round(rt_loss, 5),
            "one_way_loss_est": round(1 - math.sqrt(1 - rt_loss), 5),
            "rtt_ms": summary(rtts),
            "reordered_within_flow": in_flow,
            "reordered_across_flows": across,
            "flows": flows,
            "errors": errors,
        }
    )


def tcp_connect(target: tuple[str, int], count: int, timeout: float) -> None:
    times: list[float] = []
    failed = 0
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        t0 = time.monotonic()
        try:
            s.connect(target)
            times.append((time.monotonic() - t0) * 1000)
        except OSError:
            failed += 1
        finally:
            s.close()
    _emit({"connects": len(times), "failed": failed, "connect_ms": summary(times)})


def bulk(target: tuple[str, int], nbytes: int, timeout: float) -> None:
    t0 = time.monotonic()
    s = socket.create_connection(target, timeout=timeout)
    chunk = b"\x5a" * SINK_BUF
    left = nbytes
    try:
        t1 = time.monotonic()
        while left > 0:
            s.sendall(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))
        s.shutdown(socket.SHUT_WR)
        reply = json.loads(s.makefile("rb").readline(4096) or b"{}")
        t2 = time.monotonic()
    except (OSError, ValueError) as e:
        _emit({"ok": False, "error": str(e), "sent": nbytes - left, "seconds": round(time.monotonic() - t0, 3)})
        return
    finally:
        s.close()
    got = int(reply.get("bytes", -1))
    _emit(
        {
            "ok": got == nbytes,
            "bytes": got,
            "connect_s": round(t1 - t0, 4),
            "seconds": round(t2 - t1, 4),
            "MBps": round(nbytes / (t2 - t1) / 1e6, 3),
        }
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="wanprobe")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("serve")
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--for", dest="duration", type=float, default=60.0)
    sp = sub.add_parser("udp-rtt")
    sp.add_argument("--to", type=_addr, required=True)
    sp.add_argument("--count", type=int, default=1000)
    sp.add_argument("--flows", type=int, default=16)
    sp.add_argument("--interval", type=float, default=0.002, help="seconds between probes")
    sp.add_argument("--size", type=int, default=64)
    sp.add_argument("--wait", type=float, default=1.0, help="seconds to wait for late replies")
    sp = sub.add_parser("tcp-connect")
    sp.add_argument("--to", type=_addr, required=True)
    sp.add_argument("--count", type=int, default=20)
    sp.add_argument("--timeout", type=float, default=3.0)
    sp = sub.add_parser("bulk")
    sp.add_argument("--to", type=_addr, required=True)
    sp.add_argument("--bytes", type=int, default=4 << 20)
    sp.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args(argv)
    if a.cmd == "serve":
        serve(a.port, min(a.duration, 3600.0))
    elif a.cmd == "udp-rtt":
        count, flows = max(1, min(a.count, 100_000)), max(1, min(a.flows, 256))
        udp_rtt(a.to, count, flows, max(0.0, a.interval), max(PROBE.size, min(a.size, 1400)), min(a.wait, 30.0))
    elif a.cmd == "tcp-connect":
        tcp_connect(a.to, max(1, min(a.count, 1000)), a.timeout)
    else:
        bulk(a.to, max(1, a.bytes), a.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
