"""``natlab internet``: the public network in the lab, and share/get across it.

Why: every other scenario hands the product its relay (``--relay``). Real
users start ``p2pshare share`` and ``get`` with nothing but the default
bootstrap list, on a network of other implementations' nodes, over links
with latency and loss. This builds that: N js-libp2p nodes on the lab's
internet (kad-dht servers handing out only public addresses as js does by
default, circuit relay v2 servers with js's DEFAULT limits, AutoNAT,
identify), bootstrapped to each other; optionally one public ``p2pshare
node --dht-server`` (the "community" node, see ``inetplan.community_args``);
a delay line on the ``inet`` router so every path across it has the RTT,
jitter and loss asked for. The public network stays up for the whole run.

Per cell, a sharer site and a receiver site of the chosen NAT profiles are
added to the running lab (``Lab.extend``), ``share`` and then ``get --json``
run with only ``--bootstrap <the public nodes>``, the bytes are verified and
the timings read from the getter's events; then the sites are removed again
(``Lab.retract``), so no conntrack state leaks from one cell to the next.
What the public nodes saw (reservations, connections, what the DHT knows of
the sharer) is kept as evidence and turned into reasons for each failure.
The public network itself is ``publicnet.PublicNet``; the pure part
(cells, plans, timings, diagnoses, tables) is ``inetplan``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .fleet import shared_event
from .inetplan import (
    DEFAULT_CELLS,
    MAX_JS,
    InetRun,
    diagnose,
    measure,
    parse_cells,
    render_runs,
    render_summary,
    site_plan,
    summarize,
)
from .limited import js_missing
from .netns import LabError
from .publicnet import PublicNet, dht_answers, verbose_flags
from .scenario import LISTEN, Proc, _digest, _make_file

COMMAND = "internet"
SAMPLE_EVERY = 2.0  # seconds between looks at the js nodes' connections while a getter runs
EXIT_GRACE = 30.0  # seconds a getter may run past its --timeout before it is killed


# -- one cell ---------------------------------------------------------------------------


def _sample(net: PublicNet, ips: dict[str, str], seen: dict[str, set[str]]) -> None:
    """Note which js nodes hold a connection from each side's public IP."""
    for host, node in net.js.items():
        for peer in node.call("peers", 5).get("peers", [])[:1000]:
            addr = str(peer.get("remote_addr", ""))
            for side, ip in ips.items():
                if f"/ip4/{ip}/" in addr:
                    seen[side].add(host)


def _evidence(net: PublicNet, share: Proc, shared: dict[str, object], run: InetRun, seen: dict[str, set[str]]) -> None:
    ev = run.evidence
    sharer_id = str(shared.get("peer_id"))
    ev["sharer_peer_id"] = sharer_id
    addrs = shared.get("addresses")
    ev["code_addrs"] = [str(a) for a in addrs] if isinstance(addrs, list) else []
    ev["reserved_on"] = [
        h for h, n in net.js.items() if sharer_id in n.call("relay_reservations", 5).get("peers", [])[:1000]
    ]
    answers = dht_answers(net, sharer_id)
    ev["dht_answers"] = answers
    got = [a for addrs in answers.values() if addrs is not None for a in addrs]
    ev["dht_sharer_addrs"] = list(dict.fromkeys(got)) if any(v is not None for v in answers.values()) else None
    ev["sharer_bootstrap_peers"] = len(seen["sharer"])
    ev["receiver_bootstrap_peers"] = len(seen["receiver"])
    ev["sharer_events"] = [e for _, e in share.events if e.get("event") != "shared"][:20]
    ev["upgrade_failed"] = [e.get("reason") for _, e in share.events if e.get("event") == "upgrade_failed"][:5]
    ev["sharer_exit"] = share.proc.poll()


def run_cell(
    net: PublicNet,
    sharer: str,
    receiver: str,
    repeat: int,
    out: Path,
    *,
    size: int,
    timeout: float,
    settle: float,
) -> InetRun:
    """Add the two sites, share, get, verify, judge; the sites are removed on every path."""
    run = InetRun(sharer, receiver, repeat, size)
    logdir = out / f"{sharer}__{receiver}" / f"run{repeat}"
    logdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="natlab-inet-cell-"))
    lab = net.lab
    part = site_plan(sharer, receiver)
    procs: list[Proc] = []
    wall = time.monotonic()
    boot = [a for b in net.bootstrap for a in ("--bootstrap", b)]
    try:
        lab.extend(part)
        (logdir / "topology.json").write_text(json.dumps(dict(part.describe(), prefix=lab.prefix), indent=1) + "\n")
        ips = {"sharer": part.hosts["shr"].public_ip, "receiver": part.hosts["rcv"].public_ip}
        seen: dict[str, set[str]] = {"sharer": set(), "receiver": set()}
        seed = zlib.crc32(f"{run.cell}/{repeat}".encode())
        src, digest = _make_file(tmp / "src", size, seed)

        def env(name: str) -> dict[str, str]:
            home = tmp / f"home-{name}"
            home.mkdir(exist_ok=True)
            return dict(os.environ, P2PSHARE_HOME=str(home), P2PSHARE_NO_DEFAULT_BOOTSTRAP="1")

        argv = [*net.product, *verbose_flags(), "share", str(src), "--json", "--listen", LISTEN, *boot]
        share = Proc(lab, "shr", "share", argv, env("shr"), logdir)
        procs.append(share)
        shared = shared_event(share, "share")
        time.sleep(settle)  # the code travels to the receiver; the sharer advertises meanwhile
        dl = tmp / "out"
        dl.mkdir()
        argv = [*net.product, *verbose_flags(), "get", str(shared["code"]), "-o", str(dl), "--json"]
        argv += ["--timeout", f"{timeout:g}", *boot]
        get = Proc(lab, "rcv", "get", argv, env("rcv"), logdir)
        procs.append(get)
        deadline = get.started + timeout + EXIT_GRACE
        for _ in range(int((timeout + EXIT_GRACE) / SAMPLE_EVERY) + 2):
            _sample(net, ips, seen)
            run.exit_code = get.wait(min(deadline, time.monotonic() + SAMPLE_EVERY))
            if run.exit_code is not None or time.monotonic() >= deadline:
                break
        _evidence(net, share, shared, run, seen)
        for p in reversed(procs):
            p.close(lab)
        procs.clear()
        err = (logdir / "get.err").read_text(errors="replace")
        run.evidence["get_stderr"] = "\n".join(err.strip().splitlines()[-5:])[-4000:]
        measure(run, get.started, get.events)
        found = [p for p in sorted(dl.rglob(src.name))[:10] if p.is_file()]
        verified = bool(found) and _digest(found[0]) == digest
        run.evidence["verified"] = verified
        run.delivered = run.exit_code == 0 and run.total_s is not None and verified
    except LabError as e:  # the lab or a process's start-up failed, not the transfer
        run.evidence["lab_error"] = str(e)[:400]
    finally:
        for p in reversed(procs):
            p.close(lab)
        lab.retract(part)
        shutil.rmtree(tmp, ignore_errors=True)
        run.wall_s = round(time.monotonic() - wall, 3)
    run.reasons = diagnose(run)
    (logdir / "result.json").write_text(json.dumps(dict(asdict(run), cell=run.cell), indent=1, default=str) + "\n")
    return run


def run_internet(
    product: list[str],
    out: Path,
    cells: Sequence[tuple[str, str]],
    *,
    repeat: int,
    size: int,
    timeout: float,
    settle: float,
    n_js: int,
    community: bool,
    rtt_ms: float,
    jitter_ms: float,
    loss: float,
    seed: int,
    prefix: str | None = None,
) -> tuple[list[InetRun], dict[str, Any]]:
    """Every cell ``repeat`` times over one public network; results are rewritten after each run."""
    why = js_missing()
    if why is not None:
        raise LabError(f"natlab: {why}")
    runs: list[InetRun] = []
    meta: dict[str, Any] = {"product": product, "size": size, "timeout": timeout, "settle": settle}
    todo = [(s, r, i + 1) for i in range(repeat) for s, r in cells]
    with PublicNet(
        product,
        out / "public",
        n_js=n_js,
        community=community,
        rtt_ms=rtt_ms,
        jitter_ms=jitter_ms,
        loss=loss,
        seed=seed,
        prefix=prefix,
    ) as net:
        meta["public"] = net.describe()
        for k, (s, r, i) in enumerate(todo, 1):
            res = run_cell(net, s, r, i, out, size=size, timeout=timeout, settle=settle)
            runs.append(res)
            write_outputs(out, runs, meta)
            mark = "delivered" if res.delivered else "NOT delivered: " + "; ".join(res.reasons[:2])
            print(f"natlab: [{k}/{len(todo)}] {res.cell} #{i}: {res.path_text}, {mark}", file=sys.stderr, flush=True)
    meta["public"] = net.describe()  # now with the delay line's counters
    write_outputs(out, runs, meta)
    return runs, meta


def to_json(runs: Sequence[InetRun], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "scenario": COMMAND,
        **meta,
        "summary": summarize(runs),
        "runs": [dict(asdict(r), cell=r.cell) for r in runs],
    }


def write_outputs(out: Path, runs: Sequence[InetRun], meta: dict[str, Any]) -> None:
    (out / f"{COMMAND}.json").write_text(json.dumps(to_json(runs, meta), indent=1, default=str) + "\n")
    (out / f"{COMMAND}.md").write_text(
        f"# natlab {COMMAND}\n\n" + render_runs(runs) + "\n" + render_summary(summarize(runs))
    )


# -- CLI ----------------------------------------------------------------------------------


def _bounded(kind: type[float] | type[int], lo: float, hi: float) -> Any:
    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad number {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be {lo:g}..{hi:g}")
        return v

    return parse


def _cells(text: str) -> list[tuple[str, str]]:
    try:
        return parse_cells(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_parser(sub: Any, size: Any) -> None:
    p = sub.add_parser(COMMAND, help="js-libp2p public network + NATs + delay: share/get with only --bootstrap")
    p.add_argument("--p2pshare", help="product command (default <repo>/.venv/bin/p2pshare; env NATLAB_P2PSHARE)")
    p.add_argument(
        "--cells",
        type=_cells,
        default=parse_cells(",".join(DEFAULT_CELLS)),
        metavar="S:R,...",
        help=f"sharer:receiver profile pairs (default {','.join(DEFAULT_CELLS)})",
    )
    p.add_argument("--repeat", type=_bounded(int, 1, 20), default=1, help="runs per cell (default 1)")
    p.add_argument("--size", type=size, default=size("1m"), help="file size, e.g. 4m (default 1m)")
    p.add_argument("--timeout", type=_bounded(float, 5, 600), default=60.0, help="getter --timeout s (default 60)")
    p.add_argument(
        "--settle",
        type=_bounded(float, 0, 120),
        default=5.0,
        help="seconds between the sharer's code and the getter's start, as a person passes it on (default 5)",
    )
    p.add_argument("--js", type=_bounded(int, 1, MAX_JS), default=4, help="public js-libp2p nodes (default 4)")
    p.add_argument(
        "--community",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run one public 'p2pshare node --dht-server' in the bootstrap list (default: yes)",
    )
    p.add_argument(
        "--rtt", type=_bounded(float, 0, 2000), default=80.0, help="RTT across the internet, ms (0: no delay line)"
    )
    p.add_argument("--jitter", type=_bounded(float, 0, 500), default=5.0, help="per one-way trip, ms (default 5)")
    p.add_argument("--loss", type=_bounded(float, 0, 0.5), default=0.005, help="per one-way trip (default 0.005)")
    p.add_argument("--seed", type=int, default=1, help="delay line RNG seed (default 1)")
    p.add_argument("--json", action="store_true", help="print the JSON document instead of the tables")
    p.add_argument("--out", type=Path, default=None, help="output dir (default $TMPDIR/natlab-internet-<time>)")


def run(args: argparse.Namespace) -> int:
    from .scenario import resolve_product

    product = resolve_product(args.p2pshare)
    out: Path = args.out or Path(tempfile.gettempdir()) / time.strftime(f"natlab-{COMMAND}-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    runs, meta = run_internet(
        product,
        out,
        args.cells,
        repeat=args.repeat,
        size=args.size,
        timeout=args.timeout,
        settle=args.settle,
        n_js=args.js,
        community=args.community,
        rtt_ms=args.rtt if args.rtt > 0 else 0.0,
        jitter_ms=args.jitter if args.rtt > 0 else 0.0,
        loss=args.loss if args.rtt > 0 else 0.0,
        seed=args.seed,
        prefix=args.prefix,
    )
    if args.json:
        print(json.dumps(to_json(runs, meta), indent=1, default=str))
    else:
        print(render_runs(runs))
        print(render_summary(summarize(runs)), end="")
    print(
        f"natlab: results in {out}/{COMMAND}.md and {out}/{COMMAND}.json; logs in {out}/<cell>/run<N>/", file=sys.stderr
    )
    return 0 if all(r.delivered for r in runs) else 1
