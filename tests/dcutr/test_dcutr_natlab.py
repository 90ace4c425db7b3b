"""DCUtR and AutoNAT through real Linux NATs (``scripts/natlab_lib``), as root.

Each DCUtR case builds a fresh lab (public ``relay`` running the project's
relay, our AutoNAT server and STUN-over-TCP; ``shr`` reserves and is the DCUtR
initiator; ``rcv`` dials through the relay) and checks that a new stream after
the upgrade runs on a direct connection. Re-run by hand, with numbers:
``.venv/bin/python -m tests.dcutr._lab cone cone-rst --runs 5``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.dcutr._lab import PY, ROOT, Reader, netns, run_pair, summarize, topology

pytestmark = pytest.mark.natlab


@pytest.fixture(scope="module", autouse=True)
def lab_ok() -> None:
    why = netns.preflight() or netns.check_netns()
    if why is not None:
        pytest.skip(why)


@pytest.mark.parametrize(
    "sharer, receiver",
    [
        ("cone", "cone"),
        ("cone", "cone-rst"),
        ("public", "firewall"),
        ("firewall", "public"),
        ("double", "cone"),
    ],
)
def test_hole_punch_upgrades_relayed_connection(sharer: str, receiver: str, tmp_path: Path) -> None:
    res = run_pair(sharer, receiver, rounds=3, logdir=tmp_path, wait=25)
    s = summarize(res)
    assert s["error"] is None, s
    assert s["path"] == "direct" and s["echo_ok"], (s, [p.name for p in tmp_path.iterdir()])
    assert s["method"] in ("hole-punch", "unilateral") and s["seconds"] < 10, s


def test_symmetric_keeps_the_relay(tmp_path: Path) -> None:
    """Punching cannot work with a random mapping; the transfer stays relayed."""
    s = summarize(run_pair("symmetric", "cone", rounds=1, logdir=tmp_path, wait=8))
    assert s["nat"]["shr"] == ("endpoint-dependent", False), s
    assert s["path"] == "relayed" and s["echo_ok"], s


def test_cone_rst_both_sides(tmp_path: Path) -> None:
    """Both NATs RST early SYNs, so a round is a race; each round punches from
    a fresh port pair (a lost race blocks only its own 4-tuple), up to 8
    short rounds (measured 13 of 14 runs direct, most within 4 s)."""
    s = summarize(run_pair("cone-rst", "cone-rst", rounds=3, logdir=tmp_path, wait=15))
    assert s["path"] == "direct" and s["echo_ok"], s
    assert s["nat"] == {"shr": ("endpoint-independent", True), "rcv": ("endpoint-independent", True)}, s


PROFILES = ("public", "firewall", "cone", "cone-rst", "symmetric", "double")


def test_autonat_classifies_every_profile(tmp_path: Path) -> None:
    """Three AutoNAT servers on the internet; one client behind each profile."""
    sites: list[topology.SiteSpec] = []
    hosts = [topology.HostSpec(f"an{i}") for i in (1, 2, 3)]
    clients: dict[str, str] = {}
    for prof in PROFILES:
        short = topology.SHORT[prof]
        ss, lan = topology.side_sites(prof, short)
        sites += ss
        clients[prof] = f"{short}1"
        hosts.append(topology.HostSpec(clients[prof], lan))
    plan = topology.plan(topology.TopologySpec(tuple(sites), tuple(hosts)))
    verdicts: dict[str, Any] = {}
    with netns.Lab(plan) as lab:
        servers = []
        for i in (1, 2, 3):
            ip = plan.hosts[f"an{i}"].ip
            r = _spawn(
                lab,
                f"an{i}",
                ["-m", "tests.dcutr._relay_side", "--no-relay", "--run-for", "60", "--listen", f"/ip4/{ip}/tcp/4001"],
                tmp_path,
            )
            servers.append((r, ip))
        addrs = []
        for r, ip in servers:
            end = time.monotonic() + 30
            while not r.events and time.monotonic() < end:
                time.sleep(0.1)
            assert r.events, "AutoNAT server did not start"
            addrs.append(f"/ip4/{ip}/tcp/4001/p2p/{r.events[0]['peer']}")
        readers = {}
        for prof, host in clients.items():
            args = ["-m", "tests.dcutr._peer_main", "--exit-after", "40"]
            for a in addrs:
                args += ["--autonat", a]
            readers[prof] = _spawn(lab, host, args, tmp_path)
        end = time.monotonic() + 40
        for prof, rd in readers.items():
            while time.monotonic() < end:
                known = [e for e in rd.find("autonat") if e["reachability"] != "unknown"]
                if known:
                    verdicts[prof] = known[0]
                    break
                time.sleep(0.2)
    for prof in PROFILES:
        v = verdicts.get(prof)
        want = "public" if prof == "public" else "private"
        assert v is not None and v["reachability"] == want and v["confirmed"], (prof, v, verdicts)


def _spawn(lab: Any, role: str, args: list[str], logdir: Path) -> Reader:
    err = open(logdir / f"{role}.err", "wb")
    proc = lab.spawn(
        role,
        [PY, *args],
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=err,
        cwd=str(ROOT),
    )
    return Reader(proc)
