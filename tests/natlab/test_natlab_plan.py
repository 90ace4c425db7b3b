"""Pure checks of the address plan, rulesets and the matrix's judgement (no root)."""

from __future__ import annotations

import ipaddress

import pytest
from natlab_lib import matrix, probe, topology
from natlab_lib.profiles import ALL_PROFILES, SIDE_PROFILES, ruleset
from natlab_lib.scenario import CellResult, normalize_path

pytestmark = pytest.mark.natlab

ALLOWED = [ipaddress.ip_network(n) for n in ("203.0.113.0/24", "198.51.100.0/24", "100.64.0.0/10")]


def _addresses(p: topology.Plan) -> list[str]:
    out = []
    for cmds in p.ip_batches.values():
        out += [c.split()[2] for c in cmds if c.startswith("addr add")]
    return out


@pytest.mark.parametrize(
    "spec",
    [
        topology.probe_spec(list(ALL_PROFILES))[0],
        *(topology.scenario_spec(s, r) for s in SIDE_PROFILES for r in SIDE_PROFILES),
        topology.scenario_spec("same-lan", "same-lan"),
    ],
)
def test_plan_uses_only_the_allowed_ranges_and_short_names(spec: topology.TopologySpec) -> None:
    p = topology.plan(spec)
    addrs = _addresses(p)
    ips = [ipaddress.ip_interface(a).ip for a in addrs]
    assert ips and all(any(ip in net for net in ALLOWED) for ip in ips)
    assert len(set(ips)) == len(ips)
    for role in p.namespaces:
        assert len(f"nlffff-{role}") <= 15
    for link in p.links:
        assert len(link.a_if) <= 15 and len(link.b_if) <= 15


def test_double_nat_is_seen_at_the_carrier_and_same_lan_shares_a_site() -> None:
    p = topology.plan(topology.scenario_spec("double", "cone"))
    assert p.sites["sa"].wan_ip.startswith("100.64.")
    assert p.hosts["shr"].public_ip == p.sites["sac"].wan_ip
    assert p.hosts["shr"].public_ip.startswith("203.0.113.")
    q = topology.plan(topology.scenario_spec("same-lan", "same-lan"))
    assert q.hosts["shr"].site == q.hosts["rcv"].site == "lan"
    with pytest.raises(ValueError, match="same-lan"):
        topology.scenario_spec("same-lan", "cone")


def test_public_lan_is_routed_by_the_core_and_nat_lans_are_not() -> None:
    p = topology.plan(topology.scenario_spec("public", "cone"))
    core_routes = [c for c in p.ip_batches["inet"] if c.startswith("route add")]
    assert core_routes == [f"route add {p.sites['sa'].lan_cidr} via {p.sites['sa'].wan_ip}"]


def test_rulesets_match_the_profiles() -> None:
    assert ruleset("public") is None
    fw = ruleset("firewall") or ""
    assert "masquerade" not in fw and "drop" in fw
    assert "masquerade\n" in (ruleset("cone") or "") and "drop" in (ruleset("cone") or "")
    rst = ruleset("cone-rst") or ""
    assert "masquerade" in rst and "drop" not in rst
    assert "random,fully-random" in (ruleset("symmetric") or "")


def test_validate_rejects_bad_topologies() -> None:
    with pytest.raises(ValueError, match="bad name"):
        topology.plan(topology.TopologySpec((topology.SiteSpec("Way-Too-Long", "cone"),), ()))
    with pytest.raises(ValueError, match="behind a NAT"):
        topology.plan(
            topology.TopologySpec((topology.SiteSpec("a", "public"), topology.SiteSpec("b", "cone", "a")), ())
        )
    hosts = tuple(topology.HostSpec(f"h{i}", "a") for i in range(14))
    with pytest.raises(ValueError, match="LAN hosts"):
        topology.plan(topology.TopologySpec((topology.SiteSpec("a", "cone"),), hosts))


def test_mapping_kind() -> None:
    mk = probe.mapping_kind
    assert mk([["10.0.0.2", 5], ["10.0.0.2", 5]], "10.0.0.2", "10.0.0.2", 5) == "none"
    assert mk([["1.1.1.1", 5], ["1.1.1.1", 5]], "10.0.0.2", "1.1.1.1", 5) == "preserved"
    assert mk([["1.1.1.1", 7], ["1.1.1.1", 9]], "10.0.0.2", "1.1.1.1", 5) == "random"
    assert mk([["1.1.1.1", 7], ["1.1.1.1", 7]], "10.0.0.2", "1.1.1.1", 5) == "changed"
    assert mk([None, ["1.1.1.1", 7]], "10.0.0.2", "1.1.1.1", 5) == "unreachable"


def test_every_cell_has_an_expectation() -> None:
    pairs = matrix.cells(list(ALL_PROFILES))
    assert len(pairs) == len(SIDE_PROFILES) ** 2 + 1
    assert all(p in matrix.EXPECT for p in pairs)
    assert matrix.cells(["cone", "public"]) == [
        ("public", "public"),
        ("public", "cone"),
        ("cone", "public"),
        ("cone", "cone"),
    ]


def _ok(sharer: str, receiver: str, **kw: object) -> CellResult:
    base: dict[str, object] = dict(connected=True, path="direct", exit_code=0, total_s=1.0, verified=True)
    base.update(kw)
    return CellResult(sharer, receiver, 10, **base)  # type: ignore[arg-type]


def test_judge_enforces_the_expected_path() -> None:
    assert matrix.judge(_ok("public", "cone")) == []
    assert matrix.judge(_ok("public", "cone", path="relayed"))
    assert matrix.judge(_ok("cone", "cone", path="relayed"))
    assert matrix.judge(_ok("cone", "cone", path="relayed", upgraded=True, upgraded_path="hole-punched")) == []
    # cone↔symmetric must end direct now (birthday port probing) ...
    assert matrix.judge(_ok("symmetric", "cone", path="relayed"))
    assert matrix.judge(_ok("cone", "symmetric", path="relayed"))
    assert matrix.judge(_ok("symmetric", "cone", path="relayed", upgraded=True, upgraded_path="hole-punched")) == []
    # ... while two symmetric NATs may stay relayed
    assert matrix.judge(_ok("symmetric", "symmetric", path="relayed")) == []
    for other in ("firewall", "cone", "cone-rst", "double"):
        assert matrix.EXPECT[(other, "symmetric")] == matrix.EXPECT[("symmetric", other)] == "punch"
    assert matrix.EXPECT[("symmetric", "symmetric")] == "relay"
    assert matrix.judge(_ok("cone", "cone", verified=False))
    assert matrix.judge(_ok("cone", "cone", exit_code=3))
    assert normalize_path("hole_punched") == "hole-punched"
    assert normalize_path("circuit") == "relayed"
