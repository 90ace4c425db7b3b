"""``natlab internet``, the pure part: cells, address plans, timings, diagnoses, tables.

Nothing here touches the system, so the unit tests run it without root.
``internet.py`` builds what these functions plan and feeds them what it saw.

The address plan: the public network (the js-libp2p nodes ``js1``.. and the
optional community node ``comm``) takes the first /30s of 203.0.113.0/24 on
the ``inet`` router; each cell's two sites take the /30s from
``SITE_TRANSIT_BASE`` on. Fixed slots, so the delay line's routing rules can
name the sites' interfaces before they exist (a rule on a missing interface
waits, "detached", until it appears) and one delay line serves every cell.
"""

from __future__ import annotations

import ipaddress
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .profiles import NAT_PROFILES, SIDE_PROFILES
from .scenario import normalize_path
from .topology import CORE, HostSpec, Plan, TopologySpec, plan, scenario_spec

# The 8 cells of issue 10 (sharer:receiver).
DEFAULT_CELLS = (
    "cone:cone",
    "cone-rst:cone",
    "cone:cone-rst",
    "cone:symmetric",
    "symmetric:cone",
    "symmetric:symmetric",
    "public:cone",
    "cone:public",
)
MAX_JS = 8
COMMUNITY = "comm"
# Two public p2pshare users that meet the community node at start-up and
# leave before the cells run: they stand in for the go-libp2p AutoNAT
# servers of the real public network (js-libp2p's v1 server can confirm no
# one that is already connected to it: it closes the connection it asked on).
WARM_HOSTS = ("user1", "user2")
SITE_TRANSIT_BASE = 48  # /30 number 48 = 203.0.113.192/30; the public network stays below
SITE_SLOTS = tuple(f"t{SITE_TRANSIT_BASE + i}" for i in range(2))  # sharer's, receiver's top site
LAB_PUBLIC = (ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("198.51.100.0/24"))
LAB_LAN = ipaddress.ip_network("100.64.0.0/10")

# -- HOOK: community relay ---------------------------------------------------------
# A teammate is adding community-relay support to ``p2pshare node``. Until it
# lands the community node runs with what ``node --help`` offers today
# (``--dht-server``; ``p2pshare node`` always serves AutoNAT). Any of these
# flags that the build's help lists is added, so the lab picks the feature
# up the day it exists; ``NATLAB_COMMUNITY_ARGS`` adds arguments by hand.
# Flags that take no value; ``p2pshare node`` relays for others by default
# (``--relay-service auto``: while AutoNAT confirms it public), which is
# exactly what the lab's community node must show working.
COMMUNITY_FLAGS = ("--autonat-server", "--relay-server", "--serve-relay", "--community-relay")


def community_args(node_help: str, extra: Sequence[str] = ()) -> list[str]:
    """``p2pshare node`` arguments for the community node, from the build's ``node --help``."""
    args = ["--dht-server"] if "--dht-server" in node_help else []
    args += [f for f in COMMUNITY_FLAGS if f in node_help.split()]
    return args + [a for a in extra if a not in args]


# -- cells ----------------------------------------------------------------------------


def parse_cells(text: str) -> list[tuple[str, str]]:
    """``sharer:receiver,...`` -> pairs; ValueError with one sentence on a bad one."""
    out: list[tuple[str, str]] = []
    for item in text.split(","):
        if not item.strip():
            continue
        s, sep, r = item.strip().partition(":")
        if not sep or s not in SIDE_PROFILES or r not in SIDE_PROFILES:
            raise ValueError(f"bad cell {item.strip()!r}: want SHARER:RECEIVER from {', '.join(SIDE_PROFILES)}")
        out.append((s, r))
    if not out:
        raise ValueError("no cells given")
    return list(dict.fromkeys(out))


def cell_name(sharer: str, receiver: str) -> str:
    return f"{sharer}:{receiver}"


# -- address plans ---------------------------------------------------------------------


def js_hosts(n: int) -> list[str]:
    if not 1 <= n <= MAX_JS:
        raise ValueError(f"js nodes must be 1..{MAX_JS}")
    return [f"js{i + 1}" for i in range(n)]


def public_plan(n_js: int, community: bool) -> Plan:
    """The public network: the ``inet`` router and one /30 per public node."""
    extra = [COMMUNITY, *WARM_HOSTS] if community else []
    hosts = [HostSpec(h) for h in [*js_hosts(n_js), *extra]]
    return plan(TopologySpec((), tuple(hosts)))


def site_plan(sharer: str, receiver: str) -> Plan:
    """One cell's sites (``sa`` sharer side, ``sb`` receiver side) with hosts ``shr``/``rcv``."""
    p = plan(scenario_spec(sharer, receiver, public_hosts=()), transit_base=SITE_TRANSIT_BASE)
    used = core_ifaces(p)
    if sorted(used) != sorted(SITE_SLOTS):  # the delay line's rules name exactly these
        raise ValueError(f"sites took {used}, not the slots {list(SITE_SLOTS)}")
    return p


def core_ifaces(p: Plan) -> list[str]:
    """The ``inet`` router's interfaces that ``p`` creates."""
    return [ln.a_if for ln in p.links if ln.a == CORE]


# -- addresses ---------------------------------------------------------------------------


def addr_kind(addr: str) -> str:
    """circuit | loopback | lan (100.64.0.0/10) | public (the lab's internet) | other."""
    if "/p2p-circuit" in addr:
        return "circuit"
    parts = addr.split("/")
    if len(parts) < 3 or parts[1] != "ip4":
        return "other"
    try:
        ip = ipaddress.ip_address(parts[2])
    except ValueError:
        return "other"
    if ip.is_loopback:
        return "loopback"
    if ip in LAB_LAN:
        return "lan"
    if any(ip in net for net in LAB_PUBLIC):
        return "public"
    return "other"


def short(addr: str) -> str:
    """An address without its ``/p2p/<peer id>`` tail, for one-line reasons."""
    return addr.split("/p2p/", 1)[0] if "/p2p-circuit" not in addr else addr


_DIALLED = re.compile(r"could not reach \S+: (/ip4/[0-9.]+/tcp/\d+)")


def dialled(text: str) -> list[str]:
    """Addresses the product says it failed to dial (``could not reach <peer>: <addr>: ...``)."""
    return list(dict.fromkeys(_DIALLED.findall(text[:100_000])))[:20]


def kinds(addrs: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in addrs:
        k = addr_kind(a)
        out[k] = out.get(k, 0) + 1
    return out


# -- one run ------------------------------------------------------------------------------


@dataclass
class InetRun:
    """One repeat of one cell; times are seconds since the getter was started."""

    sharer: str
    receiver: str
    repeat: int
    size: int
    delivered: bool = False  # exit 0, a done event and the bytes verified (SHA-256)
    exit_code: int | None = None
    path: str | None = None  # of the first connection
    upgraded: str | None = None  # the path a relayed connection upgraded to
    connect_s: float | None = None
    rtt_ms: float | None = None  # the getter's ping of the sharer, in its connected event
    first_byte_s: float | None = None  # first verified bytes (progress event)
    total_s: float | None = None  # the done event
    error: str | None = None
    reasons: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def cell(self) -> str:
        return cell_name(self.sharer, self.receiver)

    @property
    def path_text(self) -> str:
        if self.path is None:
            return "–"
        return f"{self.path}→{self.upgraded}" if self.upgraded else self.path


def measure(run: InetRun, t0: float, events: Sequence[tuple[float, dict[str, object]]]) -> None:
    """Fill path and timings from the getter's timestamped ``--json`` events."""
    for t, ev in events[:100_000]:
        kind = ev.get("event")
        if kind == "connected" and run.connect_s is None:
            run.connect_s = round(t - t0, 3)
            run.path = normalize_path(ev.get("path"))
            rtt = ev.get("rtt_ms")
            run.rtt_ms = round(float(rtt), 1) if isinstance(rtt, int | float) else None
        elif kind == "upgraded" and run.upgraded is None:
            run.upgraded = normalize_path(ev.get("path", "direct"))
        elif kind == "progress" and run.first_byte_s is None:
            b = ev.get("bytes")
            if isinstance(b, int) and b > 0:
                run.first_byte_s = round(t - t0, 3)
        elif kind == "done" and run.total_s is None:
            run.total_s = round(t - t0, 3)
        elif kind == "error" and run.error is None:
            run.error = str(ev.get("message", "error"))[:4000]


def diagnose(run: InetRun) -> list[str]:
    """Why an undelivered run failed, in words, from its evidence (empty when delivered).

    Evidence keys (all optional): ``code_addrs`` (the sharer's code),
    ``reserved_on`` (js relays holding a reservation for the sharer),
    ``dht_sharer_addrs`` (every address the public DHT servers answer a
    FIND_NODE for the sharer with; None when no request succeeded),
    ``dht_answers`` (the same per server), ``sharer_bootstrap_peers`` / ``receiver_bootstrap_peers``
    (js nodes connected to each), ``sharer_exit`` (set when the sharer died),
    ``upgrade_failed`` (the sharer's DCUtR failure reasons), ``get_stderr``
    (the getter's last stderr lines, where its dial errors are), ``lab_error``
    (the lab or a process's start-up failed: nothing else is judged).
    """
    if run.delivered:
        return []
    ev = run.evidence
    if ev.get("lab_error"):
        return [f"lab: {ev['lab_error']}"]
    out: list[str] = []
    behind_nat = run.sharer in NAT_PROFILES or run.sharer == "double"
    code = [str(a) for a in ev.get("code_addrs") or []]
    k = kinds(code)
    if behind_nat and "code_addrs" in ev and not k.get("circuit"):
        held = ev.get("reserved_on") or []
        out.append(
            "sharer never reserved a relay: its code has no /p2p-circuit address"
            + (f" (yet {', '.join(held)} hold a reservation)" if held else " and no js relay holds one for it")
        )
    if behind_nat and code and not k.get("public") and not k.get("circuit"):
        out.append("the code's only addresses are the sharer's LAN/loopback ones: " + ", ".join(map(short, code[:4])))
    dht = ev.get("dht_sharer_addrs")
    if behind_nat and isinstance(dht, list):
        useful = [a for a in dht if addr_kind(str(a)) in ("public", "circuit")]
        if not useful:
            out.append(
                "the DHT offers no dialable address for the sharer"
                + (f" (only {', '.join(short(str(a)) for a in dht[:3])})" if dht else "")
            )
    answers = ev.get("dht_answers")
    for server, addrs in answers.items() if isinstance(answers, dict) else []:
        bad = [str(a) for a in addrs or [] if addr_kind(str(a)) in ("loopback", "lan")]
        if bad:
            out.append(
                f"DHT server {server} hands out the sharer's non-public addresses: {', '.join(map(short, bad[:3]))}"
            )
    for side in ("sharer", "receiver"):
        n = ev.get(f"{side}_bootstrap_peers")
        if n == 0:
            out.append(f"the {side} is connected to none of the js bootstrap nodes")
    if ev.get("sharer_exit") is not None:
        out.append(f"the sharer exited early (code {ev['sharer_exit']})")
    for why in (ev.get("upgrade_failed") or [])[:2]:
        out.append(f"hole punching failed: {str(why)[:160]}")
    if run.path is not None:
        out.append(f"connected ({run.path_text}) but the file was not delivered")
    hopeless = [a for a in dialled(f"{run.error or ''}\n{ev.get('get_stderr') or ''}") if addr_kind(a) != "public"]
    if hopeless:
        out.append(
            f"receiver dialled {', '.join(hopeless[:4])}: the sharer's own loopback/LAN addresses, "
            "which lead to the receiver itself or nowhere from its site"
        )
    if run.error:
        out.append("getter: " + run.error[:300])
    elif run.exit_code is None:
        out.append("the getter did not exit in time")
    elif run.exit_code != 0:
        out.append(f"getter exit code {run.exit_code}")
    return out or ["not delivered (no evidence why; see the cell's logs)"]


# -- summary and tables ----------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return round(statistics.median(got), 3) if got else None


def summarize(runs: Sequence[InetRun]) -> list[dict[str, Any]]:
    """Per cell, in first-seen order: delivered k of n, paths, medians over delivered runs."""
    cells: dict[str, list[InetRun]] = {}
    for r in runs:
        cells.setdefault(r.cell, []).append(r)
    rows: list[dict[str, Any]] = []
    for name, rs in cells.items():
        ok = [r for r in rs if r.delivered]
        reasons = list(dict.fromkeys(x for r in rs if not r.delivered for x in r.reasons[:1]))
        rows.append(
            {
                "cell": name,
                "runs": len(rs),
                "delivered": len(ok),
                "paths": sorted({r.path_text for r in rs}),
                "connect_s": _median([r.connect_s for r in ok]),
                "first_byte_s": _median([r.first_byte_s for r in ok]),
                "total_s": _median([r.total_s for r in ok]),
                "first_reasons": reasons[:3],
            }
        )
    return rows


def _f(x: object) -> str:
    return f"{x:.2f}" if isinstance(x, int | float) else "–"


def render_runs(runs: Sequence[InetRun]) -> str:
    rows = [
        "| cell | # | delivered | path | rtt ms | connected s | first byte s | total s | why not |",
        "|" + "---|" * 9,
    ]
    for r in runs:
        why = "; ".join(r.reasons).replace("|", "/")[:600]
        rows.append(
            f"| {r.cell} | {r.repeat} | {'yes' if r.delivered else 'NO'} | {r.path_text} | {_f(r.rtt_ms)} "
            f"| {_f(r.connect_s)} "
            f"| {_f(r.first_byte_s)} | {_f(r.total_s)} | {why} |"
        )
    return "\n".join(rows) + "\n"


def render_summary(rows: Sequence[dict[str, Any]]) -> str:
    out = [
        "| cell | delivered | paths | median connected s | median first byte s | median total s |",
        "|" + "---|" * 6,
    ]
    for row in rows:
        out.append(
            f"| {row['cell']} | {row['delivered']}/{row['runs']} | {', '.join(row['paths'])} "
            f"| {_f(row['connect_s'])} | {_f(row['first_byte_s'])} | {_f(row['total_s'])} |"
        )
    done = sum(r["delivered"] > 0 for r in rows)
    return "\n".join(out) + f"\n\n{done} of {len(rows)} cells delivered\n"
