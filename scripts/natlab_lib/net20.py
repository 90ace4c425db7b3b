"""``natlab net20``: a share found by its code alone in a network of many nodes.

What runs (honestly): ``servers`` public ``p2pshare relay`` nodes — relays and
the only Kademlia DHT *servers* — chained by ``--bootstrap``, and ``nodes``
``p2pshare`` processes behind four NATs (cone, cone-rst, symmetric, and a cone
behind a carrier cone NAT), several per LAN. All but one of them are sharers:
the target share (on the symmetric LAN, bootstrapped and reserved on the last
relay) and ``nodes - 2`` sharers of small distinct files, each reserved on a
relay and advertising its own share in the DHT (DHT *clients*: the product's
``share`` never serves DHT queries). The last node, on the double-NAT LAN,
is the receiver, bootstrapped on the FIRST relay only. It is given the target's
code with every address removed, so only the DHT (provider record under the
hashed share key, or the peer's addresses by peer ID) can lead it to the
sharer; then it fetches a few of the small shares the same way. Nodes start
``parallel`` at a time (2 cores); every node must still be alive at the end.
"""

from __future__ import annotations

import time
from pathlib import Path

from .fleet import Fleet, Outcome, code_addresses, run_variants, shared_event, without_addresses
from .scenario import Proc
from .topology import MAX_LAN_HOSTS, HostSpec, SiteSpec, TopologySpec

SITES = (("nc", "cone"), ("nr", "cone-rst"), ("ns", "symmetric"), ("nd", "cone"))
CARRIER = SiteSpec("ndc", "cone")
TARGET_SITE, RECEIVER_SITE = "ns", "nd"
MIN_NODES = 4
MAX_NODES = 4 * MAX_LAN_HOSTS
MAX_SERVERS = 8


def layout(nodes: int, servers: int) -> tuple[TopologySpec, list[str], str, str]:
    """The topology, the sharer hosts (target first) and the receiver host."""
    if not MIN_NODES <= nodes <= MAX_NODES:
        raise ValueError(f"nodes must be {MIN_NODES}..{MAX_NODES}")
    if not 1 <= servers <= MAX_SERVERS:
        raise ValueError(f"servers must be 1..{MAX_SERVERS}")
    sites = [CARRIER] + [SiteSpec(n, p, upstream="ndc" if n == "nd" else None) for n, p in SITES]
    hosts = [HostSpec(f"r{i + 1}") for i in range(servers)]
    lan: dict[str, list[str]] = {n: [] for n, _ in SITES}
    for i in range(nodes):
        site = SITES[i % len(SITES)][0]
        lan[site].append(f"{site}h{len(lan[site]) + 1}")
    for site, names in lan.items():
        hosts += [HostSpec(h, site) for h in names]
    receiver = lan[RECEIVER_SITE][0]
    target = lan[TARGET_SITE][0]
    others = [h for names in lan.values() for h in names if h not in (receiver, target)]
    return TopologySpec(tuple(sites), tuple(hosts)), [target, *others], target, receiver


def _start_all(
    fleet: Fleet, sharers: list[str], relays: list[str], parallel: int, target_src: Path, res: Outcome
) -> dict[str, tuple[Proc, dict[str, object], Path, str]]:
    """Start every sharer, ``parallel`` at a time; host -> (proc, shared, file, sha256)."""
    started: dict[str, tuple[Proc, dict[str, object], Path, str]] = {}
    files: dict[str, tuple[Path, str]] = {}
    batch: list[tuple[str, Proc]] = []
    n = len(relays)
    for i, host in enumerate(sharers):
        if i == 0:
            files[host] = (target_src, "")
            args = fleet.share_args(host, [target_src], relays=[relays[-1]], bootstrap=[relays[-1]])
        else:
            files[host] = fleet.make_file(host, 4096 + i, seed=100 + i)
            args = fleet.share_args(host, [files[host][0]], relays=[relays[i % n]], bootstrap=[relays[(i + 1) % n]])
        batch.append((host, fleet.start(host, f"share-{host}", args, fleet.home(host))))
        if len(batch) >= parallel or i == len(sharers) - 1:
            for h, proc in batch:
                started[h] = (proc, shared_event(proc, f"share-{h}"), *files[h])
            batch = []
    res.metrics["sharers_started"] = len(started)
    return started


def run_net(
    product: list[str],
    out: Path,
    *,
    nodes: int,
    servers: int,
    size: int,
    timeout: float,
    parallel: int,
    fetch_extra: int,
    prefix: str | None,
    concrete: bool,
    res: Outcome,
) -> None:
    spec, sharers, target, receiver = layout(nodes, servers)
    res.metrics.update(
        nodes=nodes, dht_servers=servers, target=target, receiver=receiver, total_processes=nodes + servers
    )
    with Fleet(product, spec, out / f"net{nodes}", prefix, concrete) as fleet:
        t0 = time.monotonic()
        relays: list[str] = []
        relay_procs: list[Proc] = []
        for i in range(servers):
            proc, addr = fleet.relay(f"r{i + 1}", bootstrap=relays[:1])
            relays.append(addr)
            relay_procs.append(proc)
        src, digest = fleet.make_file("target", size, seed=7)
        started = _start_all(fleet, sharers, relays, parallel, src, res)
        res.metrics["startup_s"] = round(time.monotonic() - t0, 3)
        res.metrics["rss_mib_total"] = fleet.rss_mib()
        shared = started[target][1]
        code = without_addresses(str(shared["code"]))
        res.check(
            code_addresses(str(shared["code"])) != [] and code_addresses(code) == [],
            "could not strip the target code's addresses",
        )
        dl = fleet.tmp / "out-target"
        get = fleet.get(receiver, "get-target", code, dl, timeout=timeout, bootstrap=relays[:1])
        rep = fleet.finish_get(get, dl, src.name, digest, time.monotonic() + timeout + 30)
        res.metrics["target"] = rep.as_metrics()
        res.check(rep.exit_code == 0, f"target: getter exit code {rep.exit_code}: {rep.error}")
        res.check(rep.verified, "target: file missing or not byte-identical")
        others = sharers[1:]
        extras = others[:: max(1, len(others) // max(1, fetch_extra))][:fetch_extra]
        fetched = []
        for h in extras:
            _, ev, path, dig = started[h]
            dl_h = fleet.tmp / f"out-{h}"
            g = fleet.get(
                receiver, f"get-{h}", without_addresses(str(ev["code"])), dl_h, timeout=timeout, bootstrap=relays[:1]
            )
            r = fleet.finish_get(g, dl_h, path.name, dig, time.monotonic() + timeout + 30)
            fetched.append({"host": h, **r.as_metrics()})
            res.check(r.exit_code == 0 and r.verified, f"{h}: exit {r.exit_code}, verified {r.verified}: {r.error}")
        res.metrics["extra_fetches"] = fetched
        dead = [p.name for p in fleet.procs if not p.name.startswith("get") and p.proc.poll() is not None]
        res.metrics["alive_at_end"] = len(relay_procs) + len(started) - len(dead)
        res.check(not dead, f"nodes died during the run: {', '.join(dead[:8])}")


def run_net20(
    product: list[str],
    out: Path,
    *,
    nodes: int,
    servers: int,
    size: int,
    timeout: float,
    parallel: int,
    fetch_extra: int,
    prefix: str | None,
    concrete: bool = False,
) -> list[Outcome]:
    return run_variants(
        [
            (
                f"{nodes}-nodes",
                lambda r: run_net(
                    product,
                    out,
                    nodes=nodes,
                    servers=servers,
                    size=size,
                    timeout=timeout,
                    parallel=parallel,
                    fetch_extra=fetch_extra,
                    prefix=prefix,
                    concrete=concrete,
                    res=r,
                ),
            )
        ],
        "net20",
    )
