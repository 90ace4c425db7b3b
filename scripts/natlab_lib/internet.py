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
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any

from .fleet import first_event, shared_event
from .inetplan import (
    COMMUNITY,
    DEFAULT_CELLS,
    MAX_JS,
    SITE_SLOTS,
    InetRun,
    community_args,
    core_ifaces,
    diagnose,
    js_hosts,
    measure,
    parse_cells,
    public_plan,
    render_runs,
    render_summary,
    site_plan,
    summarize,
)
from .limited import JS_PORT, JsRelay, js_missing
from .netns import Lab, LabError
from .scenario import LISTEN, Proc, _digest, _make_file
from .topology import CORE
from .wan import DelayLine, add_delay

COMMAND = "internet"
# What a public js-libp2p node of the lab runs: js's defaults where js has them.
JS_ARGS = ("--dht", "server", "--dht-addrs", "public", "--relay-server", "--relay-limits", "default", "--autonat")
MESH_TIMEOUT = 15.0  # seconds for the public nodes to dial each other
SAMPLE_EVERY = 2.0  # seconds between looks at the js nodes' connections while a getter runs
EXIT_GRACE = 30.0  # seconds a getter may run past its --timeout before it is killed
COMMUNITY_ENV = "NATLAB_COMMUNITY_ARGS"


def _verbose() -> list[str]:
    raw = os.environ.get("NATLAB_PRODUCT_VERBOSE", "0")
    return ["-v"] * min(int(raw), 3) if raw.isdigit() else []


class PublicNet:
    """The public network: ``inet``, the js nodes, the community node, the delay line.

    Use with ``with``: everything is torn down on every exit path.
    """

    def __init__(
        self,
        product: list[str],
        logdir: Path,
        *,
        n_js: int = 4,
        community: bool = True,
        rtt_ms: float = 80.0,
        jitter_ms: float = 5.0,
        loss: float = 0.005,
        seed: int = 1,
        prefix: str | None = None,
    ) -> None:
        self.product = product
        self.logdir = logdir
        self.n_js, self.community = n_js, community
        self.shape = {"rtt_ms": rtt_ms, "jitter_ms": jitter_ms, "loss": loss, "seed": seed}
        self.prefix = prefix
        self.tmp = Path(tempfile.mkdtemp(prefix="natlab-inet-"))
        self.js: dict[str, JsRelay] = {}
        self.comm: Proc | None = None
        self.comm_peer_id: str | None = None
        self.community_argv: list[str] = []
        self.delay: DelayLine | None = None
        self.delay_report: dict[str, Any] | None = None
        self.bootstrap: list[str] = []
        self.table_sizes: dict[str, int] = {}
        self._lab: Lab | None = None

    @property
    def lab(self) -> Lab:
        if self._lab is None:
            raise RuntimeError("PublicNet used outside its 'with'")
        return self._lab

    def env(self, name: str) -> dict[str, str]:
        home = self.tmp / f"home-{name}"
        home.mkdir(parents=True, exist_ok=True)
        # A closed lab: never the real public DHT, only the bootstrap list given.
        return dict(os.environ, P2PSHARE_HOME=str(home), P2PSHARE_NO_DEFAULT_BOOTSTRAP="1")

    def __enter__(self) -> PublicNet:
        self.logdir.mkdir(parents=True, exist_ok=True)
        family = self.prefix[:2] if self.prefix else "in"
        try:
            self._lab = Lab(public_plan(self.n_js, self.community), self.prefix, family).__enter__()
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _start(self) -> None:
        lab = self.lab
        s = self.shape
        if s["rtt_ms"] > 0 or s["jitter_ms"] > 0 or s["loss"] > 0:
            # Sites on side A (their slots, before they exist), public nodes on
            # side B: every packet crossing inet passes the delay line once, so
            # any two hosts see the RTT asked for.
            self.delay = add_delay(
                lab,
                CORE,
                list(SITE_SLOTS),
                core_ifaces(lab.plan),
                rtt_ms=s["rtt_ms"],
                jitter_ms=s["jitter_ms"],
                loss=s["loss"],
                seed=int(s["seed"]),
            )
        for host in js_hosts(self.n_js):
            self.js[host] = JsRelay(lab, host, self.logdir, args=JS_ARGS, name=host)
        self._mesh(strict=True)
        self.bootstrap = [n.addr for n in self.js.values()]
        if self.community:
            self._start_community()
        self._wait_tables()

    def _mesh(self, strict: bool) -> None:
        """Each js node dials every other (a no-op where a connection is up)."""
        nodes = list(self.js.values())
        for i, a in enumerate(nodes):
            for b in nodes[i + 1 :]:
                ok = a.call("dial", MESH_TIMEOUT + 2, addr=b.addr, timeout_ms=int(MESH_TIMEOUT * 1000))
                if strict and not ok:
                    raise LabError(f"natlab: public js nodes could not dial each other ({a.addr} -> {b.addr})")

    def _start_community(self) -> None:
        helped = subprocess.run([*self.product, "node", "--help"], capture_output=True, text=True, timeout=30)
        extra = shlex.split(os.environ.get(COMMUNITY_ENV, ""))
        self.community_argv = community_args(helped.stdout, extra)
        argv = [*self.product, *_verbose(), "node", "--json", "--listen", LISTEN, *self.community_argv]
        for b in self.bootstrap:
            argv += ["--bootstrap", b]
        self.comm = Proc(self.lab, COMMUNITY, COMMUNITY, argv, self.env(COMMUNITY), self.logdir)
        ev = first_event(self.comm, "the community node")
        if ev.get("event") != "node" or not isinstance(ev.get("peer_id"), str):
            raise LabError(f"natlab: the community node's first line is not a 'node' event: {str(ev)[:200]}")
        ip = self.lab.plan.hosts[COMMUNITY].ip
        self.comm_peer_id = str(ev["peer_id"])
        self.bootstrap.append(f"/ip4/{ip}/tcp/{JS_PORT}/p2p/{ev['peer_id']}")

    def _wait_tables(self, timeout: float = 40.0) -> None:
        """Until every js node's DHT routing table holds every other public node (bounded).

        Why the re-dials: js's AutoNAT v1 server closes the connection its
        dial-back returns, and when the asking peer was already connected
        that is the very connection the request came on (autonat.js
        ``finally { connection.close() }``). js nodes asking each other at
        start-up so lose connections, and a peer whose connection closes
        before kad-dht's ping of a new contact answers never enters the
        routing table. Dialling again once AutoNAT has had its say fills
        the tables, as time and churn do on the real network.
        """
        want = len(self.bootstrap) - 1
        deadline = time.monotonic() + timeout
        sizes: dict[str, int] = {}
        while time.monotonic() < deadline:
            sizes = {h: int(n.call("routing_table", 5).get("size", -1)) for h, n in self.js.items()}
            if all(v >= want for v in sizes.values()):
                self.table_sizes = sizes
                return
            time.sleep(1.0)
            self._mesh(strict=False)
        self.table_sizes = sizes
        print(f"natlab: warning: DHT routing tables not full after {timeout:g} s: {sizes}", file=sys.stderr)

    def describe(self) -> dict[str, Any]:
        return {
            "prefix": self.lab.prefix if self._lab else None,
            "js_nodes": {h: n.addr for h, n in self.js.items()},
            "js_args": list(JS_ARGS),
            "community": self.bootstrap[-1] if self.comm else None,
            "community_args": self.community_argv,
            "bootstrap": self.bootstrap,
            "dht_table_sizes": self.table_sizes,
            "shape": self.shape,
            "delay_line": self.delay_report,
        }

    def close(self) -> None:
        """Stop everything (idempotent); the delay line's counters go to ``delay_report``."""
        try:
            if self.comm is not None and self._lab is not None:
                self.comm.close(self._lab)
            for n in self.js.values():
                n.close()
            if self.delay is not None and self.delay_report is None:
                rep = self.delay.close()
                self.delay_report = {k: rep.get(k) for k in ("counters", "kernel_drops", "seed", "cpu_s", "exit")}
            if self._lab is not None:
                self._lab.teardown()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


# -- one cell ---------------------------------------------------------------------------


def _sample(net: PublicNet, ips: dict[str, str], seen: dict[str, set[str]]) -> None:
    """Note which js nodes hold a connection from each side's public IP."""
    for host, node in net.js.items():
        for peer in node.call("peers", 5).get("peers", [])[:1000]:
            addr = str(peer.get("remote_addr", ""))
            for side, ip in ips.items():
                if f"/ip4/{ip}/" in addr:
                    seen[side].add(host)


def dht_answers(net: PublicNet, peer_id: str) -> dict[str, list[str] | None]:
    """What each public DHT server answers a FIND_NODE for ``peer_id`` with, about that peer.

    One raw request per server (asked by js1, or js2 for js1): the addresses
    a receiver's DHT lookup can learn there. [] = the server does not name
    the peer (or names it with no address); None = the request failed.
    """
    hosts = list(net.js)
    servers = [(h, net.js[h].peer_id) for h in hosts]
    if net.comm_peer_id is not None:
        servers.append((COMMUNITY, net.comm_peer_id))
    out: dict[str, list[str] | None] = {}
    for host, server in servers:
        asker = net.js[hosts[1] if host == hosts[0] and len(hosts) > 1 else hosts[0]]
        if asker.peer_id == server:
            continue
        res = asker.call("kad_find_node", 8, peer_id=server, key_peer_id=peer_id, timeout_ms=5000)
        if not res:
            out[host] = None
            continue
        closer = res.get("closer")
        closer = closer[:100] if isinstance(closer, list) else []
        named = [c for c in closer if isinstance(c, dict) and c.get("peer_id") == peer_id]
        out[host] = [str(a) for c in named for a in (c.get("addrs") or [])][:20]
    return out


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

        argv = [*net.product, *_verbose(), "share", str(src), "--json", "--listen", LISTEN, *boot]
        share = Proc(lab, "shr", "share", argv, env("shr"), logdir)
        procs.append(share)
        shared = shared_event(share, "share")
        time.sleep(settle)  # the code travels to the receiver; the sharer advertises meanwhile
        dl = tmp / "out"
        dl.mkdir()
        argv = [*net.product, *_verbose(), "get", str(shared["code"]), "-o", str(dl), "--json"]
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
