"""Check every profile's NAT behaviour with plain socket probes.

An echo server on the public host ``echo`` reports the source address it
sees, which tells whether a NAT kept the port (and the same mapping for two
destinations) or picked a random one. The public host ``out`` then knocks on
each site's public address, unsolicited, over TCP and UDP, while the LAN
host listens on that port: accepted, RST/ICMP ("refused") or dropped
("timeout").
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .netns import Lab, LabError, wait_line
from .topology import plan, probe_spec

AGENT = str(Path(__file__).with_name("agent.py"))
ECHO_PORTS = (3478, 3479)
LISTEN_PORT = 5000
UDP_LOCAL, TCP_LOCAL = 40001, 40002
DROP_TIMEOUT = 1.5

# What each profile must show: mapping kind, unsolicited TCP, unsolicited UDP.
# "none" = no translation; "preserved" = same port, same mapping for both
# destinations; "random" = a different mapping per destination.
EXPECTED: dict[str, tuple[str, str, str]] = {
    "public": ("none", "accepted", "accepted"),
    "firewall": ("none", "timeout", "timeout"),
    "cone": ("preserved", "timeout", "timeout"),
    "cone-rst": ("preserved", "refused", "refused"),
    "symmetric": ("random", "timeout", "timeout"),
    "double": ("preserved", "timeout", "timeout"),
    "same-lan": ("preserved", "timeout", "timeout"),
}


@dataclass
class ProfileResult:
    profile: str
    host: str
    host_ip: str
    public_ip: str
    udp_seen: list[object] = field(default_factory=list)
    tcp_seen: list[object] = field(default_factory=list)
    udp_mapping: str = "?"
    tcp_mapping: str = "?"
    tcp_inbound: str = "?"
    udp_inbound: str = "?"
    lan_direct: str | None = None  # same-lan only: host 1 -> host 2 on LAN addresses
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def mapping_kind(seen: list[object], host_ip: str, public_ip: str, local_port: int) -> str:
    """Classify what the echo servers saw for one local port."""
    if not seen or any(not isinstance(s, list) or len(s) != 2 for s in seen):
        return "unreachable"
    addrs = {(str(s[0]), int(s[1])) for s in seen if isinstance(s, list)}
    ips = {a[0] for a in addrs}
    if ips == {host_ip} and addrs == {(host_ip, local_port)}:
        return "none"
    if ips != {public_ip}:
        return f"wrong-ip:{','.join(sorted(ips))}"
    if addrs == {(public_ip, local_port)}:
        return "preserved"
    if len(addrs) == len(seen):
        return "random"
    return "changed"  # one mapping for all destinations, but a new port


def _agent(lab: Lab, role: str, args: list[str], timeout: float) -> dict[str, object]:
    r = lab.run(role, [sys.executable, AGENT, *args], timeout=timeout)
    try:
        out = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": (r.stderr.strip().splitlines() or ["no output"])[-1]}
    return out if isinstance(out, dict) else {"error": "bad agent output"}


def _probe_host(lab: Lab, profile: str, host: str, peer: str | None) -> ProfileResult:
    info = lab.plan.hosts[host]
    echo_ip = lab.plan.hosts["echo"].ip
    res = ProfileResult(profile, host, info.ip, info.public_ip)
    targets = ",".join(f"{echo_ip}:{p}" for p in ECHO_PORTS)
    udp = _agent(lab, host, ["udp-map", "--local-port", str(UDP_LOCAL), "--to", targets], 8)
    tcp = _agent(lab, host, ["tcp-map", "--local-port", str(TCP_LOCAL), "--to", targets], 8)
    res.udp_seen = list(udp.get("seen") or [])  # type: ignore[call-overload]
    res.tcp_seen = list(tcp.get("seen") or [])  # type: ignore[call-overload]
    res.udp_mapping = mapping_kind(res.udp_seen, info.ip, info.public_ip, UDP_LOCAL)
    res.tcp_mapping = mapping_kind(res.tcp_seen, info.ip, info.public_ip, TCP_LOCAL)
    listener = lab.spawn(
        host,
        [sys.executable, AGENT, "serve", "--udp", str(LISTEN_PORT), "--tcp", str(LISTEN_PORT), "--for", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert listener.stdout is not None
        if b"ready" not in wait_line(listener.stdout, time.monotonic() + 10):
            res.failures.append("LAN listener did not start")
            return res
        knock = f"{info.public_ip}:{LISTEN_PORT}"
        tcp_in = _agent(lab, "out", ["tcp-connect", "--to", knock, "--timeout", str(DROP_TIMEOUT)], 10)
        udp_in = _agent(lab, "out", ["udp-poke", "--to", knock, "--timeout", str(DROP_TIMEOUT)], 10)
        res.tcp_inbound = str(tcp_in.get("result", tcp_in.get("error")))
        res.udp_inbound = str(udp_in.get("result", udp_in.get("error")))
        if peer is not None:
            direct = _agent(
                lab, peer, ["tcp-connect", "--to", f"{info.ip}:{LISTEN_PORT}", "--timeout", str(DROP_TIMEOUT)], 10
            )
            res.lan_direct = str(direct.get("result", direct.get("error")))
    finally:
        lab.stop(listener, grace=0.5)
    want_map, want_tcp, want_udp = EXPECTED[profile]
    for what, got, want in (
        ("UDP mapping", res.udp_mapping, want_map),
        ("TCP mapping", res.tcp_mapping, want_map),
        ("unsolicited TCP", res.tcp_inbound, want_tcp),
        ("unsolicited UDP", res.udp_inbound, want_udp),
    ):
        if got != want:
            res.failures.append(f"{what}: got {got}, want {want}")
    if peer is not None and res.lan_direct != "accepted":
        res.failures.append(f"LAN-direct TCP: got {res.lan_direct}, want accepted")
    return res


def run_probe(profiles: list[str], prefix: str | None = None) -> list[ProfileResult]:
    """Build one topology holding every profile and probe each; always torn down."""
    spec, lan_hosts = probe_spec(profiles)
    with Lab(plan(spec), prefix) as lab:
        ports = ",".join(str(p) for p in ECHO_PORTS)
        echo = lab.spawn(
            "echo",
            [sys.executable, AGENT, "serve", "--udp", ports, "--tcp", ports, "--for", "120"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert echo.stdout is not None
        if b"ready" not in wait_line(echo.stdout, time.monotonic() + 10):
            raise LabError("natlab: the echo server did not start")
        jobs: list[tuple[str, str, str | None]] = []
        for prof in profiles:
            hosts = lan_hosts[prof]
            jobs.append((prof, hosts[0], hosts[1] if len(hosts) > 1 else None))
        pool = ThreadPoolExecutor(max_workers=4)
        try:
            futures = [pool.submit(_probe_host, lab, *job) for job in jobs]
            return [f.result(timeout=120) for f in futures]
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def render(results: list[ProfileResult]) -> str:
    rows = ["| profile | UDP map | TCP map | inbound TCP | inbound UDP | verdict |", "|---|---|---|---|---|---|"]
    for r in results:
        verdict = "ok" if r.ok else "FAIL: " + "; ".join(r.failures)
        rows.append(
            f"| {r.profile} | {r.udp_mapping} | {r.tcp_mapping} | {r.tcp_inbound} | {r.udp_inbound} | {verdict} |"
        )
    return "\n".join(rows)


def to_json(results: list[ProfileResult]) -> list[dict[str, object]]:
    return [dict(asdict(r), ok=r.ok) for r in results]
