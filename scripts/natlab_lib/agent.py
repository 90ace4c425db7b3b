"""Socket probes run inside lab namespaces: ``python3 agent.py CMD ...``.

Standalone (stdlib only, no package imports) because it is started with
``ip netns exec``. Every command prints one JSON line and every loop is
bounded by a count and a deadline.

  serve  --udp P,.. --tcp P,.. --for S   echo servers: reply {"seen": [ip, port]}
  udp-map --local-port P --to IP:P,..    the mappings echo servers saw
  tcp-map --local-port P --to IP:P,..
  tcp-connect --to IP:P --timeout S      accepted | refused | timeout | unreachable
  udp-poke --to IP:P --timeout S         accepted | refused | timeout | unreachable
"""

from __future__ import annotations

import argparse
import errno
import json
import selectors
import socket
import sys
import time

MAX_CONNS = 256
MAX_DGRAM = 2048


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _ports(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p]


def _emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve(udp: list[int], tcp: list[int], duration: float) -> None:
    """Echo the source address each datagram/connection came from, for ``duration`` s."""
    sel = selectors.DefaultSelector()
    for port in udp:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "udp")
    for port in tcp:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(64)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "tcp")
    _emit({"ready": True, "udp": udp, "tcp": tcp})
    deadline = time.monotonic() + duration
    served = 0
    while time.monotonic() < deadline and served < 100_000:
        for key, _ in sel.select(timeout=min(0.5, max(0.0, deadline - time.monotonic()))):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                if key.data == "udp":
                    data, peer = sock.recvfrom(MAX_DGRAM)
                    sock.sendto(json.dumps({"seen": list(peer), "len": len(data)}).encode(), peer)
                else:
                    conn, peer = sock.accept()
                    with conn:
                        conn.settimeout(1.0)
                        conn.sendall(json.dumps({"seen": list(peer)}).encode() + b"\n")
            except OSError:
                pass
            served += 1


def udp_map(local_port: int, targets: list[tuple[str, int]], timeout: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", local_port))
    seen: list[object] = []
    for target in targets:
        got: object = None
        end = time.monotonic() + timeout
        for _ in range(5):  # a few resends against loss; bounded by ``end`` too
            if time.monotonic() >= end:
                break
            s.sendto(b"natlab-map", target)
            s.settimeout(max(0.05, min(0.5, end - time.monotonic())))
            try:
                data, peer = s.recvfrom(MAX_DGRAM)
            except (TimeoutError, OSError):
                continue
            if peer == target:
                got = json.loads(data)["seen"]
                break
        seen.append(got)
    _emit({"local_port": local_port, "seen": seen})


def tcp_map(local_port: int, targets: list[tuple[str, int]], timeout: float) -> None:
    """Connect from one local port to every target; sockets stay open until the end."""
    socks: list[socket.socket] = []
    seen: list[object] = []
    for target in targets:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        socks.append(s)
        s.settimeout(timeout)
        try:
            s.bind(("0.0.0.0", local_port))
            s.connect(target)
            line = s.makefile("rb").readline(4096)
            seen.append(json.loads(line)["seen"])
        except (OSError, ValueError, KeyError):
            seen.append(None)
    _emit({"local_port": local_port, "seen": seen})
    for s in socks:
        s.close()


def _classify(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    if isinstance(exc, ConnectionResetError):
        return "refused"
    return f"error:{exc.errno}"


def tcp_connect(target: tuple[str, int], timeout: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    t0 = time.monotonic()
    try:
        s.connect(target)
        result = "accepted"
    except OSError as e:
        result = _classify(e)
    finally:
        s.close()
    _emit({"result": result, "seconds": round(time.monotonic() - t0, 3)})


def udp_poke(target: tuple[str, int], timeout: float) -> None:
    """Connected UDP socket: an ICMP port unreachable surfaces as ECONNREFUSED."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(target)
    end = time.monotonic() + timeout
    result = "timeout"
    for _ in range(3):
        if time.monotonic() >= end:
            break
        try:
            s.send(b"natlab-poke")
            s.settimeout(max(0.05, min(timeout / 3, end - time.monotonic())))
            s.recv(MAX_DGRAM)
            result = "accepted"
            break
        except TimeoutError:
            continue
        except OSError as e:
            result = _classify(e)
            break
    s.close()
    _emit({"result": result})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="natlab-agent")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("serve")
    sp.add_argument("--udp", type=_ports, default=[])
    sp.add_argument("--tcp", type=_ports, default=[])
    sp.add_argument("--for", dest="duration", type=float, default=60.0)
    for name in ("udp-map", "tcp-map"):
        sp = sub.add_parser(name)
        sp.add_argument("--local-port", type=int, required=True)
        sp.add_argument("--to", required=True)
        sp.add_argument("--timeout", type=float, default=2.0)
    for name in ("tcp-connect", "udp-poke"):
        sp = sub.add_parser(name)
        sp.add_argument("--to", type=_addr, required=True)
        sp.add_argument("--timeout", type=float, default=1.5)
    a = ap.parse_args(argv)
    if a.cmd == "serve":
        serve(a.udp, a.tcp, min(a.duration, 3600.0))
    elif a.cmd in ("udp-map", "tcp-map"):
        targets = [_addr(t) for t in a.to.split(",") if t]
        (udp_map if a.cmd == "udp-map" else tcp_map)(a.local_port, targets, a.timeout)
    elif a.cmd == "tcp-connect":
        tcp_connect(a.to, a.timeout)
    else:
        udp_poke(a.to, a.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
