"""``natlab internet``'s pure part: cells, address plans, timings, diagnoses, tables.

No root, no namespaces, no Node: these run everywhere in well under a second.
"""

from __future__ import annotations

import ipaddress

import pytest
from natlab_lib import inetplan
from natlab_lib.inetplan import InetRun
from natlab_lib.topology import CORE

from .conftest import natlab

SHARER = "12D3KooWSharer"


def test_default_cells_are_the_eight_of_the_issue() -> None:
    cells = inetplan.parse_cells(",".join(inetplan.DEFAULT_CELLS))
    assert len(cells) == 8
    assert ("public", "cone") in cells and ("cone", "public") in cells and ("symmetric", "symmetric") in cells


def test_parse_cells_keeps_order_drops_repeats_and_names_the_bad_one() -> None:
    assert inetplan.parse_cells(" cone:cone, symmetric:cone ,cone:cone,") == [("cone", "cone"), ("symmetric", "cone")]
    with pytest.raises(ValueError, match="bad cell 'cone:moon'"):
        inetplan.parse_cells("cone:cone,cone:moon")
    with pytest.raises(ValueError, match="bad cell 'same-lan:same-lan'"):
        inetplan.parse_cells("same-lan:same-lan")
    with pytest.raises(ValueError, match="no cells"):
        inetplan.parse_cells(" , ")


def _ips(p: inetplan.Plan) -> set[ipaddress.IPv4Address]:
    out = set()
    for cmds in p.ip_batches.values():
        for c in cmds:
            if c.startswith("addr add"):
                out.add(ipaddress.IPv4Interface(c.split()[2]).ip)
    return out


def test_public_plan_puts_every_node_on_the_internet_below_the_site_slots() -> None:
    p = inetplan.public_plan(4, community=True)
    assert [h for h in p.hosts] == ["js1", "js2", "js3", "js4", inetplan.COMMUNITY, *inetplan.WARM_HOSTS]
    assert p.hosts["js1"].ip == "203.0.113.2" and p.hosts[inetplan.COMMUNITY].ip == "203.0.113.18"
    assert inetplan.core_ifaces(p) == ["t0", "t1", "t2", "t3", "t4", "t5", "t6"]
    assert not set(inetplan.core_ifaces(inetplan.public_plan(inetplan.MAX_JS, True))) & set(inetplan.SITE_SLOTS)
    assert inetplan.core_ifaces(inetplan.public_plan(1, community=False)) == ["t0"]
    with pytest.raises(ValueError):
        inetplan.public_plan(inetplan.MAX_JS + 1, community=False)


@pytest.mark.parametrize("cell", ["cone:cone", "public:cone", "cone:public", "double:symmetric", "firewall:cone-rst"])
def test_site_plans_take_exactly_the_slots_and_no_public_address(cell: str) -> None:
    s, r = cell.split(":")
    sites = inetplan.site_plan(s, r)
    public = inetplan.public_plan(inetplan.MAX_JS, community=True)
    assert sorted(inetplan.core_ifaces(sites)) == sorted(inetplan.SITE_SLOTS)
    assert not _ips(sites) & _ips(public)
    assert {"shr", "rcv"} <= set(sites.hosts)
    lan = ipaddress.ip_network("100.64.0.0/10")
    for host in ("shr", "rcv"):
        info = sites.hosts[host]
        behind_nat = info.profile not in ("public", "firewall")
        assert (ipaddress.ip_address(info.ip) in lan) == behind_nat
    # Only the core's batch is shared with the public plan: the rest is the cell's own.
    assert set(sites.namespaces) & set(public.namespaces) == {CORE}


def test_community_args_take_what_the_build_offers() -> None:
    today = "usage: p2pshare node [--listen MULTIADDR] [--dht-server] [--json]\n  --dht-server  answer ..."
    assert inetplan.community_args(today) == ["--dht-server"]
    later = today + "\n  --relay-server   serve as a circuit relay\n  --autonat-server  x"
    assert inetplan.community_args(later, ["--foo", "1"]) == [
        "--dht-server",
        "--autonat-server",
        "--relay-server",
        "--foo",
        "1",
    ]
    assert inetplan.community_args("", ["--x"]) == ["--x"]


@pytest.mark.parametrize(
    ("addr", "kind"),
    [
        ("/ip4/203.0.113.7/tcp/4001/p2p/x", "public"),
        ("/ip4/198.51.100.18/tcp/4001", "public"),
        ("/ip4/100.64.1.2/tcp/4001", "lan"),
        ("/ip4/127.0.0.1/tcp/4001", "loopback"),
        ("/ip4/203.0.113.2/tcp/4001/p2p/r/p2p-circuit/p2p/s", "circuit"),
        ("/ip4/8.8.8.8/tcp/1", "other"),
        ("/dns4/example.org/tcp/1", "other"),
        ("garbage", "other"),
    ],
)
def test_addr_kind(addr: str, kind: str) -> None:
    assert inetplan.addr_kind(addr) == kind


def test_measure_reads_path_rtt_and_timings_from_the_events() -> None:
    run = InetRun("cone", "cone", 1, 100)
    events: list[tuple[float, dict[str, object]]] = [
        (10.0, {"event": "manifest", "total": 100}),
        (11.5, {"event": "connected", "path": "relayed", "rtt_ms": 81.27}),
        (12.0, {"event": "progress", "bytes": 0, "total": 100}),
        (12.5, {"event": "upgraded", "path": "hole-punched"}),
        (13.0, {"event": "progress", "bytes": 40, "total": 100}),
        (14.0, {"event": "progress", "bytes": 100, "total": 100}),
        (14.2, {"event": "done", "bytes": 100}),
        (15.0, {"event": "connected", "path": "direct"}),
    ]
    inetplan.measure(run, 10.0, events)
    assert (run.path, run.upgraded, run.path_text) == ("relayed", "hole-punched", "relayed→hole-punched")
    assert (run.rtt_ms, run.connect_s, run.first_byte_s, run.total_s) == (81.3, 1.5, 3.0, 4.2)
    failed = InetRun("cone", "cone", 1, 100)
    inetplan.measure(failed, 0.0, [(30.0, {"event": "error", "message": "could not reach the sharer", "exit_code": 3})])
    assert failed.path is None and failed.path_text == "–" and failed.error == "could not reach the sharer"


def _failed(sharer: str, **evidence: object) -> InetRun:
    run = InetRun(sharer, "cone", 1, 100, exit_code=3, error="could not reach the sharer: ...")
    run.evidence = dict(evidence)
    return run


def test_diagnose_names_the_missing_relay_the_lan_only_code_and_the_leaky_dht() -> None:
    assert inetplan.diagnose(InetRun("cone", "cone", 1, 1, delivered=True)) == []
    stderr = (
        "p2pshare: error: could not reach the sharer: direct: could not reach 12D3: /ip4/100.64.1.2/tcp/4001: "
        "SwarmException ...; could not reach 12D3: /ip4/127.0.0.1/tcp/4001: SwarmException ..."
    )
    run = _failed(
        "cone",
        code_addrs=["/ip4/100.64.1.2/tcp/4001"],
        reserved_on=[],
        dht_sharer_addrs=[f"/ip4/127.0.0.1/tcp/4001/p2p/{SHARER}"],
        dht_answers={"js1": [], "comm": [f"/ip4/127.0.0.1/tcp/4001/p2p/{SHARER}"]},
        sharer_bootstrap_peers=5,
        receiver_bootstrap_peers=0,
        get_stderr=stderr,
    )
    why = inetplan.diagnose(run)
    text = "\n".join(why)
    assert why[0].startswith("sharer never reserved a relay") and "no js relay holds one" in why[0]
    assert "the code's only addresses are the sharer's LAN/loopback ones: /ip4/100.64.1.2/tcp/4001" in text
    assert "DHT server comm hands out the sharer's non-public addresses: /ip4/127.0.0.1/tcp/4001" in text
    assert "the DHT offers no dialable address for the sharer (only /ip4/127.0.0.1/tcp/4001)" in text
    assert "receiver dialled /ip4/100.64.1.2/tcp/4001, /ip4/127.0.0.1/tcp/4001" in text
    assert "the receiver is connected to none of the js bootstrap nodes" in text
    assert "sharer is connected to none" not in text
    assert why[-1].startswith("getter: could not reach the sharer")
    assert SHARER not in text  # addresses are shortened to their transport part


def test_diagnose_does_not_blame_a_relay_a_public_sharer_needs_not() -> None:
    run = _failed("public", code_addrs=["/ip4/198.51.100.18/tcp/4001"], reserved_on=[])
    why = inetplan.diagnose(run)
    assert not any("relay" in w for w in why) and why == ["getter: could not reach the sharer: ..."]
    relayed = _failed("cone", code_addrs=["/ip4/203.0.113.2/tcp/4001/p2p/r/p2p-circuit/p2p/s"], reserved_on=["js1"])
    relayed.path, relayed.error = "relayed", "the relay cut the connection: ..."
    why = inetplan.diagnose(relayed)
    assert why[0] == "connected (relayed) but the file was not delivered" and "never reserved" not in why[0]
    assert inetplan.diagnose(InetRun("cone", "cone", 1, 1, exit_code=None)) == ["the getter did not exit in time"]
    broken = _failed("cone", lab_error="share printed no JSON line within 30s (see share.err)")
    assert inetplan.diagnose(broken) == ["lab: share printed no JSON line within 30s (see share.err)"]


def test_summary_takes_medians_over_delivered_runs_only() -> None:
    runs = [
        InetRun("public", "cone", 1, 1, delivered=True, path="direct", connect_s=1.0, first_byte_s=2.0, total_s=3.0),
        InetRun("public", "cone", 2, 1, delivered=True, path="direct", connect_s=3.0, first_byte_s=4.0, total_s=5.0),
        InetRun("public", "cone", 3, 1, path="direct", connect_s=9.0, reasons=["connected (direct) but ..."]),
        InetRun("cone", "cone", 1, 1, reasons=["sharer never reserved a relay: ..."]),
    ]
    rows = inetplan.summarize(runs)
    assert [r["cell"] for r in rows] == ["public:cone", "cone:cone"]
    assert rows[0]["delivered"] == 2 and rows[0]["runs"] == 3 and rows[0]["connect_s"] == 2.0
    assert rows[0]["total_s"] == 4.0 and rows[1]["total_s"] is None and rows[1]["paths"] == ["–"]
    assert rows[1]["first_reasons"] == ["sharer never reserved a relay: ..."]
    table = inetplan.render_summary(rows)
    assert "| public:cone | 2/3 | direct | 2.00 | 3.00 | 4.00 |" in table
    assert "| cone:cone | 0/1 | – | – | – | – |" in table and table.endswith("1 of 2 cells delivered\n")
    per_run = inetplan.render_runs(runs)
    assert per_run.count("\n") == 6 and "| cone:cone | 1 | NO | – |" in per_run


def test_cli_rejects_a_bad_cell_before_touching_the_system() -> None:
    r = natlab("internet", "--cells", "cone:moon")
    assert r.returncode == 2 and "bad cell 'cone:moon'" in r.stderr and "Traceback" not in r.stderr
    r = natlab("internet", "--help")
    assert r.returncode == 0
    for flag in ("--cells", "--repeat", "--size", "--rtt", "--jitter", "--loss", "--community", "--no-community"):
        assert flag in r.stdout
