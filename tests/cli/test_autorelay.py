"""AutoRelay through real processes (issue 10): a sharer given only
``--bootstrap`` finds the relay among the peers it meets, reserves on it by
itself and advertises its circuit address in the DHT; a receiver that may
only use relays (``--force-relay``) still gets the file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from p2pshare import sharecode
from tests.cli.helpers import Proc, run, start, write_random

pytestmark = pytest.mark.slow


def test_a_sharer_with_only_bootstrap_reserves_on_a_relay_it_meets(tmp_path: Path, procs: list[Proc]) -> None:
    relay = start(["relay", "--listen", "/ip4/127.0.0.1/tcp/0", "--json"], tmp_path / "relay-home")
    procs.append(relay)
    first = next(relay.events(timeout=60))
    assert first["event"] == "relay", first
    boot = next(a for a in first["addrs"] if a.startswith("/ip4/127.0.0.1/"))
    write_random(tmp_path / "f.bin", 150_000)
    sharer = start(
        ["share", str(tmp_path / "f.bin"), "--json", "--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", boot],
        tmp_path / "sharer-home",
    )
    procs.append(sharer)
    events = sharer.events(timeout=60)
    shared = next(e for e in events if e["event"] == "shared")
    relays = next(e for e in events if e["event"] == "relays" and e["addrs"])
    assert all(f"/p2p/{first['peer_id']}/p2p-circuit" in a for a in relays["addrs"]), relays
    # The receiver may not dial the sharer directly, and its code names no
    # circuit (a code printed before the reservation): it must find the
    # circuit address in the DHT, where the sharer re-advertised it.
    code = sharecode.parse_code(shared["code"])
    assert isinstance(code, sharecode.ShareCode)
    bare = dataclasses.replace(code, addresses=tuple(a for a in code.addresses if "/p2p-circuit" not in a))
    res = run(
        ["get", bare.encode(), "-o", str(tmp_path / "out"), "--force-relay", "--bootstrap", boot, "--timeout", "60"],
        tmp_path / "rx",
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "f.bin").read_bytes() == (tmp_path / "f.bin").read_bytes()


def _node(tmp_path: Path, procs: list[Proc], name: str, *extra: str) -> tuple[Proc, str]:
    p = start(["node", "--listen", "/ip4/127.0.0.1/tcp/0", "--dht-server", "--json", *extra], tmp_path / name)
    procs.append(p)
    first = next(p.events(timeout=60))
    assert first["event"] == "node", first
    addr = next(a for a in first["addrs"] if a.startswith("/ip4/127.0.0.1/"))
    return p, f"{addr}/p2p/{first['peer_id']}" if "/p2p/" not in addr else addr


def test_a_community_relay_is_found_in_the_dht_and_carries_the_transfer(tmp_path: Path, procs: list[Proc]) -> None:
    """A node that relays for others advertises itself under the community
    key; a sharer that knows only a bootstrap node (no relay service) finds
    it, reserves on it, and a relay-only receiver gets the file through it."""
    _, boot = _node(tmp_path, procs, "boot-home", "--relay-service", "off")
    community, community_addr = _node(tmp_path, procs, "community-home", "--relay-service", "on", "--bootstrap", boot)
    serving = next(e for e in community.events(timeout=30) if e["event"] == "relay_service")
    assert serving["serving"], serving
    community_id = community_addr.rsplit("/p2p/", 1)[1]
    write_random(tmp_path / "f.bin", 300_000)
    sharer = start(
        ["share", str(tmp_path / "f.bin"), "--json", "--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", boot],
        tmp_path / "sharer-home",
    )
    procs.append(sharer)
    events = sharer.events(timeout=90)
    shared = next(e for e in events if e["event"] == "shared")
    relays = next(e for e in events if e["event"] == "relays" and e["addrs"])
    assert any(f"/p2p/{community_id}/p2p-circuit" in a for a in relays["addrs"]), relays
    code = sharecode.parse_code(shared["code"])
    assert isinstance(code, sharecode.ShareCode)
    bare = dataclasses.replace(code, addresses=tuple(a for a in code.addresses if "/p2p-circuit" not in a))
    res = run(
        ["get", bare.encode(), "-o", str(tmp_path / "out"), "--force-relay", "--bootstrap", boot, "--timeout", "60"],
        tmp_path / "rx",
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "f.bin").read_bytes() == (tmp_path / "f.bin").read_bytes()
