"""``natlab internet`` in real namespaces: the cell that works today, and the site swap.

``public:cone`` and ``symmetric:symmetric`` over the js-libp2p public
network with the community node, 80 ms RTT, one file each, ``--bootstrap``
alone: a reachable sharer delivers direct; two symmetric NATs cannot punch,
and js's relays cap circuits at 128 KiB, so that file (256 KiB) arrives only
through the community node's relay, found by both sides on their own. One
run of the command (~90-150 s) feeds the checks. Prefixes are
of the ``in`` family, out of reach of other engineers' ``nl`` cleanups.
Skipped without root/netns, without the product, or without Node and the
js-libp2p packages (scripts/setup.d/interop.sh).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from natlab_lib import inetplan
from natlab_lib.limited import js_missing
from natlab_lib.netns import Lab, _run
from natlab_lib.scenario import DEFAULT_PRODUCT

from .conftest import leftovers, natlab

pytestmark = pytest.mark.natlab
SIZE = 256 * 1024


def in_prefix() -> str:
    for _ in range(50):
        p = "in" + secrets.token_hex(2)
        if not leftovers(p):
            return p
    raise RuntimeError("no free in prefix")


def test_sites_come_and_go_while_the_public_network_stays(lab_ok: None) -> None:
    prefix = in_prefix()
    try:
        with Lab(inetplan.public_plan(1, community=False), prefix, "in") as lab:
            for s, r in (("cone", "symmetric"), ("double", "public"), ("cone", "symmetric")):
                part = inetplan.site_plan(s, r)
                lab.extend(part)
                links = _run(["ip", "-n", lab.ns("inet"), "-o", "link", "show"]).stdout
                assert all(f" {t}@" in links for t in inetplan.SITE_SLOTS), links
                assert lab.run("shr", ["true"], 10).returncode == 0
                lab.retract(part)
                links = _run(["ip", "-n", lab.ns("inet"), "-o", "link", "show"]).stdout
                assert not any(f" {t}@" in links for t in inetplan.SITE_SLOTS), links
                assert not [n for n in leftovers(prefix) if n.endswith(("-shr", "-rcv", "-sa", "-sb"))]
            assert lab.run("js1", ["true"], 10).returncode == 0
    finally:
        assert leftovers(prefix) == []


@pytest.fixture(scope="module")
def run(lab_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not DEFAULT_PRODUCT.exists():
        pytest.skip(f"no product at {DEFAULT_PRODUCT}")
    why = js_missing()
    if why is not None:
        pytest.skip(why)
    out: Path = tmp_path_factory.mktemp("internet")
    prefix = in_prefix()
    r = natlab(
        "internet",
        "--cells",
        "public:cone,symmetric:symmetric",
        "--repeat",
        "1",
        "--size",
        "256k",
        "--timeout",
        "45",
        "--settle",
        "2",
        "--rtt",
        "80",
        "--community",
        "--out",
        str(out),
        "--prefix",
        prefix,
        timeout=300,
    )
    assert leftovers(prefix) == []
    yield {"rc": r.returncode, "stdout": r.stdout, "log": r.stdout[-3000:] + r.stderr[-3000:], "out": out}


def test_public_sharer_delivers_direct_over_the_lab_internet(run: dict[str, Any]) -> None:
    assert run["rc"] == 0, run["log"]
    doc = json.loads((run["out"] / "internet.json").read_text())
    one, sym = doc["runs"]
    assert one["cell"] == "public:cone" and one["delivered"] and one["evidence"]["verified"], run["log"]
    assert one["path"] == "direct" and one["size"] == SIZE
    assert 0 < one["connect_s"] <= one["first_byte_s"] <= one["total_s"] < 45
    # The delay line is in the path: the getter's ping of the sharer sees the 80 ms.
    assert one["rtt_ms"] is not None and 60 <= one["rtt_ms"] <= 400
    pub = doc["public"]
    assert len(pub["js_nodes"]) == 4 and pub["community"] and len(pub["bootstrap"]) == 5
    assert "--dht-server" in pub["community_args"]
    assert pub["delay_line"]["counters"], pub["delay_line"]
    assert pub["community_serving_s"] is not None, run["log"]
    assert doc["summary"][:1] == [
        {
            "cell": "public:cone",
            "runs": 1,
            "delivered": 1,
            "paths": ["direct"],
            "connect_s": one["connect_s"],
            "first_byte_s": one["first_byte_s"],
            "total_s": one["total_s"],
            "first_reasons": [],
        }
    ]


def test_two_symmetric_nats_deliver_through_the_community_relay(run: dict[str, Any]) -> None:
    """More than js's 128 KiB per circuit: only a relay that carries data
    can deliver it, and nobody passed ``--relay``."""
    doc = json.loads((run["out"] / "internet.json").read_text())
    sym = doc["runs"][1]
    assert sym["cell"] == "symmetric:symmetric", run["log"]
    assert sym["delivered"] and sym["evidence"]["verified"] and sym["path"] == "relayed", run["log"]
    comm = (run["out"] / "public" / "comm.out").read_text()
    assert '"event":"relay_service","serving":true' in comm.replace(" ", "")


def test_the_tables_are_printed_and_written(run: dict[str, Any]) -> None:
    out = run["stdout"]
    assert "| cell | # | delivered | path | rtt ms | connected s | first byte s | total s | why not |" in out
    assert "| public:cone | 1 | yes | direct |" in out
    assert "| public:cone | 1/1 | direct |" in out and out.rstrip().endswith("2 of 2 cells delivered")
    md = (run["out"] / "internet.md").read_text()
    assert "| public:cone | 1/1 | direct |" in md
    for name in ("share.out", "get.out", "get.err", "result.json", "topology.json"):
        assert (run["out"] / "public__cone" / "run1" / name).exists(), name
    for name in ("js1.err", "js4.out", "comm.out"):
        assert (run["out"] / "public" / name).exists(), name
