"""The public network of ``natlab internet``: ``inet``, js-libp2p nodes, the community node, the delay line.

Why a module of its own: it is built once per run and outlives every cell
(``internet.py`` adds and removes the cells' sites around it). The js nodes
run peer.mjs with js's defaults where js has them (``JS_ARGS``); the
community node is ``p2pshare node`` with what the build offers
(``inetplan.community_args``, the marked hook for community relays).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from .fleet import first_event, wait_event
from .inetplan import COMMUNITY, SITE_SLOTS, WARM_HOSTS, community_args, core_ifaces, js_hosts, public_plan
from .limited import JS_PORT, JsRelay
from .netns import Lab, LabError
from .scenario import LISTEN, Proc
from .topology import CORE
from .wan import DelayLine, add_delay

# What a public js-libp2p node of the lab runs: js's defaults where js has them.
# --public-cidr: js counts the documentation ranges the lab's internet is
# made of as private, and would then refuse AutoNAT dial-backs to public
# nodes and hand out none of their addresses from the DHT; on the real
# internet those nodes' addresses are public, so here they must count so too.
JS_ARGS = (
    "--dht",
    "server",
    "--dht-addrs",
    "public",
    "--relay-server",
    "--relay-limits",
    "default",
    "--autonat",
    "--public-cidr",
    "203.0.113.0/24",
    "--public-cidr",
    "198.51.100.0/24",
)
MESH_TIMEOUT = 15.0  # seconds for the public nodes to dial each other
COMMUNITY_ENV = "NATLAB_COMMUNITY_ARGS"


def verbose_flags() -> list[str]:
    """``-v`` flags for product processes: ``NATLAB_PRODUCT_VERBOSE=N`` (as ``Fleet``), logs in ``.err``."""
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
        self.community_serving_s: float | None = None
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
        argv = [*self.product, *verbose_flags(), "node", "--json", "--listen", LISTEN, *self.community_argv]
        for b in self.bootstrap:
            argv += ["--bootstrap", b]
        self.comm = Proc(self.lab, COMMUNITY, COMMUNITY, argv, self.env(COMMUNITY), self.logdir)
        ev = first_event(self.comm, "the community node")
        if ev.get("event") != "node" or not isinstance(ev.get("peer_id"), str):
            raise LabError(f"natlab: the community node's first line is not a 'node' event: {str(ev)[:200]}")
        ip = self.lab.plan.hosts[COMMUNITY].ip
        self.comm_peer_id = str(ev["peer_id"])
        self.bootstrap.append(f"/ip4/{ip}/tcp/{JS_PORT}/p2p/{ev['peer_id']}")
        self._warm_community()

    def _warm_community(self, timeout: float = 60.0) -> None:
        """Let two public p2pshare users meet the community node until its
        AutoNAT confirms it public and it serves relays, then stop them (see
        ``inetplan.WARM_HOSTS``): the cells then run with one public p2pshare
        node that has been online a while, as on the real network."""
        assert self.comm is not None
        started = time.monotonic()
        users = []
        for h in WARM_HOSTS:
            argv = [*self.product, "node", "--json", "--listen", LISTEN, "--relay-service", "off"]
            users.append(Proc(self.lab, h, h, [*argv, "--bootstrap", self.bootstrap[-1]], self.env(h), self.logdir))
        try:
            ev = wait_event(
                self.comm,
                lambda e: e.get("event") == "relay_service" and e.get("serving") is True,
                started + timeout,
            )
        finally:
            for u in users:
                u.close(self.lab)
        self.community_serving_s = round(time.monotonic() - started, 1) if ev is not None else None
        if ev is None:
            print(f"natlab: warning: the community node was not serving relays after {timeout:g} s", file=sys.stderr)

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
            "community_serving_s": self.community_serving_s,
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
