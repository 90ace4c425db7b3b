"""``natlab lan``: two machines on one LAN, no bootstrap node, no internet.

The sharer and the receiver sit on one Linux bridge (a site's LAN,
100.64.x.0/24) with ``P2PSHARE_NO_DEFAULT_BOOTSTRAP=1`` and no
``--bootstrap``: local discovery (mDNS) is the only way to meet.

- ``direct``: share, then get with the code; the time from the getter's
  start to its first byte is measured (``runs`` times).
- ``stale``: the sharer shares, stops, and shares the same paths again on
  another port with the same ``P2PSHARE_HOME`` (same peer ID and code). The
  old code is proved stale by a control getter run with ``--no-mdns`` (it
  must fail), then a getter with the OLD code must find the sharer through
  mDNS and the LAN's DHT only, and receive the file intact.
- ``moved``: as ``stale``, but the second run has a new identity (only the
  share record is kept): the old code's peer ID is gone, and only the
  share's provider record in the LAN's DHT (fed by mDNS) leads to it.
- ``short``: share, then get with the SHORT code (number and words): the
  number is found in the LAN's DHT fed by mDNS, the words run the PAKE;
  no bootstrap node anywhere. First byte timed as in ``direct``.
- ``offline``: as ``moved``, with a bootstrap node configured on every node
  that cannot be reached (default flags, no internet): the sharer serves
  the LAN's DHT once it sees that, and the getter finds it there.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

from .fleet import Fleet, Outcome, code_addresses, read_get
from .scenario import Proc
from .topology import HostSpec, SiteSpec, TopologySpec

CONTROL_TIMEOUT = 4.0
GET_TIMEOUT = 30.0
#: A bootstrap node that cannot answer: a documentation address no lab
#: network holds (the lab's core has no route to it), as the public
#: bootstrap nodes are on a LAN with no internet.
DEAD_BOOTSTRAP = "/ip4/198.51.100.250/tcp/4001/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"
LAN_DHT_WAIT = 14.0  # the node's LAN_DHT_CHECK (10 s) and a margin


def lan_spec() -> TopologySpec:
    return TopologySpec((SiteSpec("lan", "cone"),), (HostSpec("shr", "lan"), HostSpec("rcv", "lan")))


def _run_get(
    fleet: Fleet, name: str, code: str, timeout: float, extra: tuple[str, ...] = ()
) -> tuple[Proc, Path, int | None]:
    """Run ``get`` on the receiver's host until it exits (bounded)."""
    out = fleet.tmp / f"out-{name}"
    out.mkdir(parents=True, exist_ok=True)
    args = ["get", code, "-o", str(out), "--json", "--yes", "--timeout", str(timeout), *extra]
    proc = fleet.start("rcv", name, args, fleet.home(name))
    code_ = proc.wait(time.monotonic() + timeout + 20)
    closed = proc.close(fleet.lab)
    return proc, out, (code_ if code_ is not None else closed)


def run_direct(fleet: Fleet, res: Outcome, runs: int, size: int, *, short: bool = False) -> None:
    src, digest = fleet.make_file("direct", size, seed=3)
    _, shared = fleet.share("shr", "share", fleet.home("sharer"), [src])
    code = shared.get("short_code") if short else shared["code"]
    res.check(isinstance(code, str), f"the sharer printed no short code: {shared}")
    if not isinstance(code, str):
        return
    firsts: list[float] = []
    for i in range(runs):
        proc, out, exit_code = _run_get(fleet, f"get{i}", code, GET_TIMEOUT)
        rep = read_get(proc, exit_code, out, src.name, digest)
        m = rep.as_metrics()
        res.metrics[f"run{i}"] = {k: m[k] for k in ("exit_code", "connect_s", "first_progress_s", "verified", "error")}
        res.check(rep.exit_code == 0 and rep.verified, f"run {i}: exit {rep.exit_code}, verified {rep.verified}")
        first = m["first_progress_s"]
        if isinstance(first, float | int):
            firsts.append(float(first))
    if firsts:
        res.metrics["first_byte_s"] = firsts
        res.metrics["first_byte_median_s"] = statistics.median(firsts)


def run_stale(fleet: Fleet, res: Outcome, size: int) -> None:
    src, digest = fleet.make_file("stale", size, seed=4)
    home = fleet.home("sharer")
    first, old = fleet.share("shr", "share1", home, [src], port=4001)
    first.close(fleet.lab)
    _, new = fleet.share("shr", "share2", home, [src], port=4002)
    old_code = str(old["code"])
    res.metrics.update(old_addresses=code_addresses(old_code), new_addresses=code_addresses(str(new["code"])))
    res.check(new.get("peer_id") == old.get("peer_id"), "the restarted sharer has another peer ID")
    res.check(not set(code_addresses(old_code)) & set(code_addresses(str(new["code"]))), "the old code is not stale")
    _control_and_get(fleet, res, old_code, src, digest)


def run_moved(fleet: Fleet, res: Outcome, size: int, *, offline: bool = False) -> None:
    """The same share (code and key) from a new identity: only the share's
    provider record, in the LAN's DHT, leads from the old code to it.
    ``offline``: every node has a bootstrap node configured that cannot be
    reached (default flags on a LAN with no internet)."""
    boot = [DEAD_BOOTSTRAP] if offline else []
    src, digest = fleet.make_file("moved", size, seed=5)
    home1, home2 = fleet.home("sharer1"), fleet.home("sharer2")
    first, old = fleet.share("shr", "share1", home1, [src], port=4001, bootstrap=boot)
    first.close(fleet.lab)
    shutil.copytree(home1 / "shares", home2 / "shares")  # the share record, not identity.key
    _, new = fleet.share("shr", "share2", home2, [src], port=4002, bootstrap=boot)
    res.check(new.get("peer_id") != old.get("peer_id"), "the second sharer kept the peer ID")
    res.check(new.get("share_code") == old.get("share_code"), "the second sharer has another share code")
    if offline:
        time.sleep(LAN_DHT_WAIT)  # the sharer finds its bootstrap node out of reach
    extra = tuple(a for b in boot for a in ("--bootstrap", b))
    _control_and_get(fleet, res, str(old["code"]), src, digest, extra)


def _control_and_get(
    fleet: Fleet, res: Outcome, old_code: str, src: Path, digest: str, extra: tuple[str, ...] = ()
) -> None:
    proc, out, exit_code = _run_get(fleet, "control", old_code, CONTROL_TIMEOUT, ("--no-mdns", *extra))
    control = read_get(proc, exit_code, out, src.name, digest)
    res.metrics["control_exit"] = control.exit_code
    res.check(
        control.exit_code != 0 and not control.verified,
        f"without mDNS the old code still worked (exit {control.exit_code}): the test proves nothing",
    )
    proc, out, exit_code = _run_get(fleet, "get", old_code, GET_TIMEOUT, extra)
    rep = read_get(proc, exit_code, out, src.name, digest)
    res.metrics.update(rep.as_metrics())
    res.check(rep.exit_code == 0, f"getter exit code {rep.exit_code}: {rep.error}")
    res.check(rep.verified, "file missing or not byte-identical")


def run_lan(
    product: list[str], out: Path, *, variants: list[str], prefix: str | None = None, runs: int = 3, size: int = 1 << 20
) -> list[Outcome]:
    """Run the variants, each in a lab of its own; every lab is torn down."""
    results: list[Outcome] = []
    for variant in variants:
        res = Outcome("lan", variant)
        started = time.monotonic()
        with Fleet(product, lan_spec(), out / variant, prefix) as fleet:
            if variant == "direct":
                run_direct(fleet, res, runs, size)
            elif variant == "short":
                run_direct(fleet, res, runs, size, short=True)
            elif variant == "stale":
                run_stale(fleet, res, size)
            elif variant == "moved":
                run_moved(fleet, res, size)
            elif variant == "offline":
                run_moved(fleet, res, size, offline=True)
            else:
                raise ValueError(f"unknown lan variant {variant!r}")
        res.passed = not res.reasons
        res.wall_s = round(time.monotonic() - started, 1)
        results.append(res)
    return results
