"""``natlab stale``, ``relay-kill`` and ``net20`` with the real product, plus their pure helpers.

The product runs as users run it (listening on 0.0.0.0, no
``P2PSHARE_*`` tweaks beyond ``P2PSHARE_NO_DEFAULT_BOOTSTRAP=1``). About
2 minutes in all; net20 (22 processes, ~1.8 GB RSS) takes ~55 s of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from natlab_lib import fleet, net20, topology
from natlab_lib.scenario import DEFAULT_PRODUCT, product_has_relay

from .conftest import leftovers, natlab

pytestmark = pytest.mark.natlab

SS_SAMPLE = """\
ESTAB 0      0      203.0.113.6:4001 203.0.113.22:40312
\t cubic wscale:7,7 rto:204 rtt:0.5/0.2 mss:1448 bytes_sent:2500000 bytes_acked:2499000 \
bytes_received:900
ESTAB 0      0      203.0.113.6:4001 203.0.113.30:5555
\t cubic bytes_sent:70 bytes_received:10
ESTAB 0      0      203.0.113.6:4001 203.0.113.22:40999
\t cubic bytes_sent:30 bytes_received:10
"""


def test_code_without_addresses_keeps_everything_else() -> None:
    obj = {
        "addresses": ["/ip4/203.0.113.9/tcp/4001"],
        "encryption_key": "k" * 44,
        "peer_id": "12D3KooWtest",
        "share_code": "ABCD2345EFGH",
        "version": 1,
        "x": [1],
    }
    stripped = fleet.decode_code(fleet.without_addresses(fleet.encode_code(obj)))
    assert stripped == dict(obj, addresses=[])
    # Pasted with padding and line breaks, as the product accepts it.
    code = fleet.encode_code(obj)
    padded = code + "=" * (-len(code) % 4)
    assert fleet.code_addresses(padded[:10] + "\n" + padded[10:]) == obj["addresses"]


def test_relay_ips_and_ss_parsing() -> None:
    addrs = [
        "/ip4/100.64.1.2/tcp/4001",
        "/ip4/203.0.113.6/tcp/4001/p2p/R/p2p-circuit/p2p/S",
        "/ip4/203.0.113.10/tcp/4001/p2p/Q/p2p-circuit/p2p/S",
        "/ip4/203.0.113.6/tcp/4001/p2p/R/p2p-circuit/p2p/S",
    ]
    assert fleet.relay_ips(addrs) == ["203.0.113.6", "203.0.113.10"]
    assert fleet.sum_bytes_sent(SS_SAMPLE, "203.0.113.22") == 2_500_030
    assert fleet.sum_bytes_sent(SS_SAMPLE, "203.0.113.99") == 0


@pytest.mark.parametrize("nodes,servers", [(4, 1), (20, 2), (52, 8)])
def test_net20_layout_is_buildable(nodes: int, servers: int) -> None:
    spec, sharers, target, receiver = net20.layout(nodes, servers)
    plan = topology.plan(spec)  # validates names, LAN sizes and address ranges
    lan_hosts = [h for h in spec.hosts if h.site is not None]
    assert len(lan_hosts) == nodes and len(sharers) == nodes - 1
    assert receiver not in sharers and sharers[0] == target
    assert plan.hosts[target].profile == "symmetric"
    assert plan.sites["nd"].wan_ip.startswith("100.64.")  # behind the carrier NAT
    assert {plan.hosts[h.name].site for h in lan_hosts} == {"nc", "nr", "ns", "nd"}
    with pytest.raises(ValueError):
        net20.layout(nodes, 0)


@pytest.fixture(scope="module")
def product(lab_ok: None) -> str:
    if not DEFAULT_PRODUCT.exists() or not product_has_relay([str(DEFAULT_PRODUCT)]):
        pytest.skip(f"no product with 'p2pshare relay' at {DEFAULT_PRODUCT}")
    return str(DEFAULT_PRODUCT)


def _run(prefix: str, out: Path, *args: str, timeout: float) -> dict[str, object]:
    r = natlab(*args, "--out", str(out), "--prefix", prefix, timeout=timeout)
    assert leftovers(prefix) == []
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads((out / f"{args[0]}.json").read_text())
    assert r.stdout.strip().splitlines()[-1] == f"{summary['passed']} passed, 0 failed"
    return summary


def _metrics(summary: dict[str, object], variant: str) -> dict[str, object]:
    outcomes = summary["outcomes"]
    assert isinstance(outcomes, list)
    return next(o["metrics"] for o in outcomes if o["variant"].startswith(variant))


def test_stale_code_is_found_through_the_dht(product: str, prefix: str, tmp_path: Path) -> None:
    s = _run(prefix, tmp_path, "stale", "--size", "256k", "--timeout", "25", timeout=200)
    assert s["passed"] == 2
    for variant in ("port", "move"):
        m = _metrics(s, variant)
        assert m["control_exit"] == 3 and m["exit_code"] == 0 and m["verified"]
        common = set(m["old_addresses"]) & set(m["new_addresses"])  # type: ignore[arg-type]
        assert all(a.startswith("/ip4/127.") for a in common)
    assert _metrics(s, "move")["connects"][0][1] == "relayed"  # type: ignore[index]
    assert (tmp_path / "move" / "share2.out").exists()


def test_relay_killed_mid_transfer_resumes_over_the_other(product: str, prefix: str, tmp_path: Path) -> None:
    s = _run(prefix, tmp_path, "relay-kill", "--size", "8m", "--timeout", "30", timeout=150)
    m = _metrics(s, "two-relays")
    total, at_kill, done = m["total"], m["bytes_at_kill"], m["done_bytes"]
    assert isinstance(total, int) and isinstance(at_kill, int) and isinstance(done, int)
    assert 0 < at_kill < total and done <= total - at_kill
    assert len(m["connects"]) >= 2 and m["survivor_bytes_after_kill"] > 0  # type: ignore[arg-type,operator]
    assert (tmp_path / "relay-kill" / "get.out").exists()


def test_net20_finds_an_addressless_code(product: str, prefix: str, tmp_path: Path) -> None:
    s = _run(prefix, tmp_path, "net20", "--nodes", "20", "--fetch-extra", "2", timeout=300)
    m = _metrics(s, "20-nodes")
    assert m["total_processes"] == 22 and m["sharers_started"] == 19
    assert m["alive_at_end"] == 21  # 2 relays + 19 sharers (the getter has exited)
    assert m["target"]["verified"] and len(m["extra_fetches"]) == 2  # type: ignore[index,arg-type]


@pytest.mark.parametrize(
    "args,msg",
    [
        (["net20", "--nodes", "3"], "must be 4..52"),
        (["stale", "--variants", "port,nope"], "unknown variant 'nope'"),
        (["relay-kill", "--timeout", "0"], "must be 1..600"),
    ],
)
def test_bad_input_is_exit_2_without_traceback(args: list[str], msg: str) -> None:
    r = natlab(*args)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr
