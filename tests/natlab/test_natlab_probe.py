"""Each NAT profile really behaves as named: one `natlab probe` over all of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from natlab_lib.probe import TCP_LOCAL, UDP_LOCAL

from .conftest import leftovers, natlab

pytestmark = pytest.mark.natlab


@pytest.fixture(scope="module")
def probed(lab_ok: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("probe") / "probe.json"
    r = natlab("probe", "--json", str(out), timeout=120)
    results = {x["profile"]: x for x in json.loads(Path(out).read_text())} if out.exists() else {}
    return {"rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr, "by": results}


def _ports(seen: list[Any]) -> list[int]:
    return [int(s[1]) for s in seen]


def test_probe_passes_for_every_profile(probed: dict[str, Any]) -> None:
    assert probed["rc"] == 0, probed["stdout"] + probed["stderr"]
    assert probed["stdout"].strip().splitlines()[-1] == "7 passed, 0 failed"


@pytest.mark.parametrize("profile", ["cone", "cone-rst", "double", "same-lan"])
def test_cone_nats_preserve_the_port_for_every_destination(probed: dict[str, Any], profile: str) -> None:
    r = probed["by"][profile]
    assert r["public_ip"].startswith("203.0.113.") and r["host_ip"].startswith("100.64.")
    for seen, local in ((r["udp_seen"], UDP_LOCAL), (r["tcp_seen"], TCP_LOCAL)):
        assert [s[0] for s in seen] == [r["public_ip"]] * 2
        assert _ports(seen) == [local, local]


def test_symmetric_nat_picks_a_new_port_per_destination(probed: dict[str, Any]) -> None:
    r = probed["by"]["symmetric"]
    for seen, local in ((r["udp_seen"], UDP_LOCAL), (r["tcp_seen"], TCP_LOCAL)):
        assert [s[0] for s in seen] == [r["public_ip"]] * 2
        ports = _ports(seen)
        assert ports[0] != ports[1] and local not in ports


@pytest.mark.parametrize("profile", ["public", "firewall"])
def test_no_translation_without_nat(probed: dict[str, Any], profile: str) -> None:
    r = probed["by"][profile]
    assert r["host_ip"] == r["public_ip"] and r["host_ip"].startswith("198.51.100.")
    assert _ports(r["udp_seen"]) == [UDP_LOCAL] * 2
    assert {s[0] for s in r["udp_seen"] + r["tcp_seen"]} == {r["host_ip"]}


@pytest.mark.parametrize(
    "profile,tcp,udp",
    [
        ("public", "accepted", "accepted"),
        ("firewall", "timeout", "timeout"),
        ("cone", "timeout", "timeout"),
        ("symmetric", "timeout", "timeout"),
        ("double", "timeout", "timeout"),
        ("cone-rst", "refused", "refused"),
    ],
)
def test_unsolicited_inbound(probed: dict[str, Any], profile: str, tcp: str, udp: str) -> None:
    r = probed["by"][profile]
    assert (r["tcp_inbound"], r["udp_inbound"]) == (tcp, udp)


def test_same_lan_hosts_reach_each_other_directly(probed: dict[str, Any]) -> None:
    assert probed["by"]["same-lan"]["lan_direct"] == "accepted"


def test_probe_leaves_nothing_behind(probed: dict[str, Any]) -> None:
    prefix = next(line.split()[-1] for line in probed["stderr"].splitlines() if line.startswith("natlab: run prefix"))
    assert leftovers(prefix) == []
