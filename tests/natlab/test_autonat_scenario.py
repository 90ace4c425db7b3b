"""``natlab autonat``: AutoNAT's verdict per host profile with the real product.

Three ``p2pshare relay`` hosts (the AutoNAT servers) and one ``p2pshare
node`` per profile in one lab; public must be confirmed public, every other
profile confirmed private. About 25 s (the node's 5 s boot delay plus a 10 s
dial-back timeout where a NAT drops the dial-back silently).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from natlab_lib import autonat, topology
from natlab_lib.profiles import SIDE_PROFILES
from natlab_lib.scenario import DEFAULT_PRODUCT, product_has_relay

from .conftest import leftovers, natlab


def test_judge_needs_a_confirmed_verdict_of_the_right_kind() -> None:
    pub = {"event": "reachability", "reachability": "public", "confirmed": True}
    priv = {"event": "reachability", "reachability": "private", "confirmed": True}
    unconfirmed = dict(priv, confirmed=False)
    assert autonat.judge("public", [pub]) == []
    assert autonat.judge("cone", [unconfirmed, priv]) == []
    assert autonat.judge("cone", [pub]) == ["confirmed 'public', expected 'private'"]
    assert autonat.judge("symmetric", [unconfirmed]) == ["no confirmed verdict (saw private?)"]
    assert autonat.judge("double", []) == ["no confirmed verdict (saw nothing)"]


def test_layout_has_three_public_relays_and_one_host_per_profile() -> None:
    spec, where = autonat.spec(list(SIDE_PROFILES))
    plan = topology.plan(spec)
    for r in autonat.RELAYS:
        assert plan.hosts[r].site is None  # on the internet
    assert sorted(where) == sorted(SIDE_PROFILES)
    for prof, host in where.items():
        assert plan.hosts[host].profile == ("cone" if prof == "double" else prof)
    assert plan.sites["sdbl"].wan_ip.startswith("100.64.")  # behind the carrier NAT


def test_bad_profile_is_exit_2_without_traceback() -> None:
    r = natlab("autonat", "--profiles", "cone,nope")
    assert r.returncode == 2 and "unknown profile 'nope'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.natlab
def test_autonat_verdict_per_profile(prefix: str, tmp_path: Path) -> None:
    if not DEFAULT_PRODUCT.exists() or not product_has_relay([str(DEFAULT_PRODUCT)]):
        pytest.skip(f"no product with 'p2pshare relay' at {DEFAULT_PRODUCT}")
    r = natlab("autonat", "--out", str(tmp_path), "--prefix", prefix, timeout=200)
    assert leftovers(prefix) == []
    summary = json.loads((tmp_path / "autonat.json").read_text())
    assert r.stdout.strip().splitlines()[-1] == f"{summary['passed']} passed, {summary['failed']} failed"
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    verdicts = {o["variant"]: o["metrics"]["verdict"] for o in summary["outcomes"]}
    assert verdicts == {p: ("public" if p == "public" else "private") for p in SIDE_PROFILES}
    assert (tmp_path / "autonat.md").exists() and (tmp_path / "autonat" / "hpub.out").exists()
