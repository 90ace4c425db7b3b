#!/usr/bin/env python3
"""FAKE p2pshare, for testing the NAT lab's runner plumbing ONLY.

It is not the product and proves nothing about it. It speaks the product's
CLI shape (``share PATH --json --listen ...``, ``get CODE -o DIR --json
--timeout S``, JSON event lines, exit code 3 when the sharer is unreachable)
over a plain TCP socket with no NAT traversal, so the lab's runner, log
collection, result files and teardown can be tested before the product
exists. Its ``relay`` only prints the product's first JSON line and idles
(no relaying), so the lab's relay start-up and ``--relay`` hand-over are
exercised too.
The environment hooks FAKE_P2PSHARE_PIDFILE and FAKE_P2PSHARE_STALL serve
the teardown tests.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import sys
import time

CHUNK = 64 * 1024


def emit(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def own_ip() -> str:
    """The address this host uses towards the 'internet' (no packet is sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("203.0.113.1", 9))
    ip = s.getsockname()[0]
    s.close()
    return str(ip)


def relay(listen: str) -> int:
    port = int(listen.rstrip("/").split("/")[-1])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(8)
    emit(event="relay", peer_id="fakerelay", addresses=[f"/ip4/{own_ip()}/tcp/{port}"])
    time.sleep(120)
    return 0


def share(path: str, listen: str, once: bool, relay_addr: str | None) -> int:
    # Test hooks: record our pid (so a test can check teardown killed us) and
    # stall before the first line (so a test can interrupt the lab mid-run).
    pidfile = os.environ.get("FAKE_P2PSHARE_PIDFILE")
    if pidfile:
        # Whole or absent: the test polls for the file and reads it at once
        # (it once read it between the create and the write: "").
        with open(f"{pidfile}.tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(f"{pidfile}.tmp", pidfile)
    time.sleep(min(float(os.environ.get("FAKE_P2PSHARE_STALL", "0")), 60.0))
    port = int(listen.rstrip("/").split("/")[-1])
    data = open(path, "rb").read()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(8)
    addr = f"{own_ip()}:{port}"
    code = base64.urlsafe_b64encode(json.dumps({"addrs": [addr], "name": os.path.basename(path)}).encode()).decode()
    emit(
        event="shared",
        code=code,
        legacy_code=f"FAKE:KEY:{addr}",
        peer_id="fake",
        addresses=[f"/ip4/{addr.replace(':', '/tcp/')}"],
        relay=relay_addr,
    )
    srv.settimeout(1.0)
    end = time.monotonic() + 300
    for _ in range(100):
        if time.monotonic() > end:
            break
        try:
            conn, _peer = srv.accept()
        except TimeoutError:
            continue
        with conn:
            conn.sendall(data)
        if once:
            break
    return 0


def get(code: str, out: str, timeout: float) -> int:
    try:
        info = json.loads(base64.urlsafe_b64decode(code.encode()))
        host, _, port = str(info["addrs"][0]).rpartition(":")
        name = os.path.basename(str(info["name"]))
    except (ValueError, KeyError, IndexError):
        emit(event="error", exit_code=2, message="bad code")
        return 2
    t0 = time.monotonic()
    try:
        conn = socket.create_connection((host, int(port)), timeout=min(timeout, 5.0))
    except OSError as e:
        emit(event="error", exit_code=3, message=f"sharer not reachable: {e}")
        return 3
    emit(event="connected", path="direct", rtt_ms=round((time.monotonic() - t0) * 1000, 1))
    got = 0
    dest = os.path.join(out, name)
    with conn, open(dest, "wb") as f:
        for _ in range(1 << 16):
            block = conn.recv(CHUNK)
            if not block:
                break
            f.write(block)
            got += len(block)
            emit(event="progress", bytes=got)
    emit(event="done", path=dest, bytes=got)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(prog="fake_p2pshare")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("share")
    s.add_argument("path")
    s.add_argument("--json", action="store_true")
    s.add_argument("--listen", default="/ip4/0.0.0.0/tcp/4001")
    s.add_argument("--once", action="store_true")
    s.add_argument("--relay")
    r = sub.add_parser("relay")
    r.add_argument("--json", action="store_true")
    r.add_argument("--listen", default="/ip4/0.0.0.0/tcp/4001")
    g = sub.add_parser("get")
    g.add_argument("code")
    g.add_argument("-o", dest="out", required=True)
    g.add_argument("--json", action="store_true")
    g.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()
    try:
        if a.cmd == "relay":
            return relay(a.listen)
        if a.cmd == "share":
            return share(a.path, a.listen, a.once, a.relay)
        return get(a.code, a.out, a.timeout)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
