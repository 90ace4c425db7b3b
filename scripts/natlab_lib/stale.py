"""``natlab stale``: an old share code whose addresses no longer work.

The sharer shares, hands out its code, stops, and shares the same paths again
with the same ``P2PSHARE_HOME`` (same peer ID, share code and key) where the
old addresses do not reach it:

- ``port``: a public host restarts on another TCP port;
- ``move``: the sharer moves from a cone-NAT LAN host reserved on relay A to
  a host behind a symmetric NAT reserved only on relay B.

Each variant proves the old code is stale twice (no address in common with
the new run, and a getter without a DHT bootstrap fails), then fetches with
the OLD code and the relay as DHT bootstrap, and verifies the file.
"""

from __future__ import annotations

import time
from pathlib import Path

from .fleet import Fleet, Outcome, code_addresses, run_variants
from .topology import HostSpec, SiteSpec, TopologySpec

CONTROL_TIMEOUT = 4.0


def port_spec() -> TopologySpec:
    return TopologySpec((SiteSpec("nr", "cone"),), (HostSpec("ra"), HostSpec("shr"), HostSpec("rcv", "nr")))


def move_spec() -> TopologySpec:
    sites = (SiteSpec("na", "cone"), SiteSpec("nb", "symmetric"), SiteSpec("nr", "cone-rst"))
    hosts = (HostSpec("ra"), HostSpec("rb"), HostSpec("s1", "na"), HostSpec("s2", "nb"), HostSpec("rcv", "nr"))
    return TopologySpec(sites, hosts)


def _finish(
    fleet: Fleet,
    res: Outcome,
    old: dict[str, object],
    new: dict[str, object],
    src: Path,
    digest: str,
    bootstrap: str,
    timeout: float,
    control: bool,
) -> None:
    """The shared second half: staleness checks, the control getter, the real getter."""
    old_code, new_code = str(old["code"]), str(new["code"])
    old_addrs, new_addrs = code_addresses(old_code), code_addresses(new_code)
    res.metrics.update(old_addresses=old_addrs, new_addresses=new_addrs)
    res.check(
        new.get("peer_id") == old.get("peer_id"), "the restarted sharer has another peer ID (P2PSHARE_HOME not reused)"
    )
    res.check(
        new.get("share_code") == old.get("share_code"), "the restarted sharer has another share code (share not reused)"
    )
    res.check(bool(old_addrs), "the first code carries no address")
    common = {a for a in set(old_addrs) & set(new_addrs) if not a.startswith("/ip4/127.")}
    res.check(not common, f"old and new codes share {sorted(common)[:2]}: the old code is not stale")
    if control:
        out = fleet.tmp / "out-control"
        get = fleet.get("rcv", "get-control", old_code, out, timeout=CONTROL_TIMEOUT)
        rep = fleet.finish_get(get, out, src.name, digest, time.monotonic() + CONTROL_TIMEOUT + 20)
        res.metrics["control_exit"] = rep.exit_code
        res.check(
            rep.exit_code == 3 and not rep.verified,
            f"without the DHT the old code still worked or failed oddly "
            f"(exit {rep.exit_code}): it is not stale, the test proves nothing",
        )
    out = fleet.tmp / "out"
    get = fleet.get("rcv", "get", old_code, out, timeout=timeout, bootstrap=[bootstrap])
    rep = fleet.finish_get(get, out, src.name, digest, time.monotonic() + timeout + 20)
    res.metrics.update(rep.as_metrics())
    res.check(rep.exit_code == 0, f"getter exit code {rep.exit_code}: {rep.error}")
    res.check(rep.done is not None, "no 'done' event")
    res.check(rep.verified, "file missing or not byte-identical")


def run_port(
    product: list[str],
    out: Path,
    *,
    size: int,
    timeout: float,
    prefix: str | None,
    control: bool,
    concrete: bool,
    res: Outcome,
) -> None:
    with Fleet(product, port_spec(), out / "port", prefix, concrete) as fleet:
        _, ra = fleet.relay("ra")
        src, digest = fleet.make_file("port", size, seed=1)
        home = fleet.home("sharer")
        first, old = fleet.share("shr", "share1", home, [src], port=4001, bootstrap=[ra])
        time.sleep(1.0)  # let the first run advertise (the getter retries anyway)
        first.close(fleet.lab)
        _, new = fleet.share("shr", "share2", home, [src], port=4002, bootstrap=[ra])
        _finish(fleet, res, old, new, src, digest, ra, timeout, control)


def run_move(
    product: list[str],
    out: Path,
    *,
    size: int,
    timeout: float,
    prefix: str | None,
    control: bool,
    concrete: bool,
    res: Outcome,
) -> None:
    with Fleet(product, move_spec(), out / "move", prefix, concrete) as fleet:
        _, ra = fleet.relay("ra")
        _, rb = fleet.relay("rb", bootstrap=[ra])
        src, digest = fleet.make_file("move", size, seed=2)
        home = fleet.home("sharer")
        # Only the configured relays: with AutoRelay the moved sharer would
        # also reserve on relay A again, the old code would keep working and
        # the scenario (a stale code found through the DHT) would prove nothing.
        first, old = fleet.share("s1", "share1", home, [src], relays=[ra], bootstrap=[ra], autorelay=False)
        time.sleep(1.0)
        first.close(fleet.lab)
        _, new = fleet.share("s2", "share2", home, [src], relays=[rb], bootstrap=[ra], autorelay=False)
        _finish(fleet, res, old, new, src, digest, ra, timeout, control)


def run_stale(
    product: list[str],
    out: Path,
    *,
    size: int,
    timeout: float,
    prefix: str | None,
    variants: list[str],
    control: bool = True,
    concrete: bool = False,
) -> list[Outcome]:
    kw = dict(size=size, timeout=timeout, prefix=prefix, control=control, concrete=concrete)
    table = {
        "port": lambda r: run_port(product, out, res=r, **kw),  # type: ignore[arg-type]
        "move": lambda r: run_move(product, out, res=r, **kw),
    }  # type: ignore[arg-type]
    return run_variants([(v, table[v]) for v in variants], "stale")
