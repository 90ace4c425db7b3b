"""``natlab autonat``: AutoNAT's verdict per host profile, through the real CLI.

Three ``p2pshare relay --json`` hosts on the internet (each is also an
AutoNAT server; a verdict needs two servers that agree) and, behind each
chosen profile, one ``p2pshare node --json`` listening on TCP 4001 with the
three relays. The node asks the relays it is configured with
(``AutoNATConfig``: up to 3 servers a round, 2 must agree, first round 5 s
after start, a dial-back bounded by 10 s), so a verdict takes ~6 s for a
reachable host and up to ~16 s for one whose NAT drops the dial-back
silently. The scenario reads the ``{"event":"reachability",...}`` lines and
expects ``public`` + confirmed for ``public`` and ``private`` + confirmed for
every other profile. Everything runs in one lab, torn down on every path.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .fleet import Fleet, Outcome, first_event, write_results
from .netns import LabError
from .profiles import SIDE_PROFILES, parse_profiles
from .scenario import Proc
from .topology import SHORT, HostSpec, SiteSpec, TopologySpec, side_sites

COMMAND = "autonat"
RELAYS = ("r1", "r2", "r3")
EXPECTED = {p: ("public" if p == "public" else "private") for p in SIDE_PROFILES}
POLL = 0.2  # seconds spent waiting on one node's output before looking at the next


def spec(profiles: Sequence[str]) -> tuple[TopologySpec, dict[str, str]]:
    """Relays r1-r3 on the internet and one host per profile; profile -> host."""
    sites: list[SiteSpec] = []
    hosts = [HostSpec(r) for r in RELAYS]
    where: dict[str, str] = {}
    for prof in profiles:
        short = SHORT[prof]
        s, lan = side_sites(prof, f"s{short}")
        sites += s
        hosts.append(HostSpec(f"h{short}", lan))
        where[prof] = f"h{short}"
    return TopologySpec(tuple(sites), tuple(hosts)), where


def judge(profile: str, verdicts: Sequence[dict[str, Any]]) -> list[str]:
    """Reasons the profile's reachability events miss the expectation (pure)."""
    want = EXPECTED[profile]
    confirmed = [v for v in verdicts if v.get("confirmed") is True]
    if not confirmed:
        seen = ", ".join(f"{v.get('reachability')}{'' if v.get('confirmed') else '?'}" for v in verdicts) or "nothing"
        return [f"no confirmed verdict (saw {seen})"]
    wrong = [v for v in confirmed if v.get("reachability") != want]
    if wrong:
        return [f"confirmed {wrong[0].get('reachability')!r}, expected {want!r}"]
    return []


def _node_args(listen: str, relays: Sequence[str]) -> list[str]:
    args = ["node", "--json", "--listen", listen, "--no-default-bootstrap"]
    for r in relays:
        args += ["--relay", r]
    return args


def _collect(nodes: dict[str, Proc], deadline: float) -> dict[str, list[tuple[float, dict[str, Any]]]]:
    """Reachability events per profile until each has a confirmed verdict or time is up."""
    got: dict[str, list[tuple[float, dict[str, Any]]]] = {p: [] for p in nodes}
    nat: dict[str, dict[str, Any]] = {}
    done: set[str] = set()
    for _ in range(100_000):
        if len(done) == len(nodes) or time.monotonic() >= deadline:
            break
        for prof, proc in nodes.items():
            if prof in done:
                continue
            ev = proc.next_event(min(deadline, time.monotonic() + POLL))
            if ev is None:
                if proc.proc.poll() is not None:
                    done.add(prof)  # exited: judged on what it printed
                continue
            t, body = ev
            if body.get("event") == "reachability":
                got[prof].append((round(t - proc.started, 3), body))
                if body.get("confirmed") is True:
                    done.add(prof)
            elif body.get("event") == "nat":
                nat[prof] = body
    for prof, body in nat.items():
        got[prof].insert(0, (-1.0, body))
    return got


def run_autonat(
    product: list[str],
    out: Path,
    *,
    profiles: Sequence[str],
    timeout: float,
    prefix: str | None = None,
    concrete: bool = False,
) -> list[Outcome]:
    """One lab, all profiles at once; one :class:`Outcome` per profile."""
    topo, where = spec(profiles)
    results = {p: Outcome(COMMAND, p) for p in profiles}
    wall = time.monotonic()
    try:
        with Fleet(product, topo, out / COMMAND, prefix, concrete) as fleet:
            relays: list[str] = []
            for r in RELAYS:
                _, addr = fleet.relay(r, bootstrap=relays[:1])
                relays.append(addr)
            nodes: dict[str, Proc] = {}
            for prof in profiles:
                host = where[prof]
                nodes[prof] = proc = fleet.start(host, host, _node_args(fleet.listen(host), relays), fleet.home(host))
                ev = first_event(proc, f"node on {host} ({prof})")
                results[prof].metrics["peer_id"] = ev.get("peer_id")
            started = time.monotonic()
            events = _collect(nodes, started + timeout)
            for prof in profiles:
                res = results[prof]
                verdicts = [b for t, b in events[prof] if b.get("event") == "reachability"]
                first = next(
                    ((t, b) for t, b in events[prof] if b.get("event") == "reachability" and b.get("confirmed")), None
                )
                nat = next((b for t, b in events[prof] if b.get("event") == "nat"), None)
                res.metrics.update(
                    host=where[prof],
                    expected=EXPECTED[prof],
                    verdict=first[1].get("reachability") if first else None,
                    confirmed_after_s=first[0] if first else None,
                    addrs=first[1].get("addrs") if first else None,
                    nat=(nat or {}).get("mapping"),
                    events=[
                        [t, b.get("reachability"), b.get("confirmed")]
                        for t, b in events[prof]
                        if b.get("event") == "reachability"
                    ][:20],
                )
                res.reasons += judge(prof, verdicts)
    except LabError as e:
        for res in results.values():
            if not res.reasons and "verdict" not in res.metrics:
                res.reasons.append(str(e))
    for res in results.values():
        res.wall_s = round(time.monotonic() - wall, 3)
        res.passed = not res.reasons
    return list(results.values())


# -- CLI -------------------------------------------------------------------------


def _profiles(text: str) -> list[str]:
    try:
        return parse_profiles(text, SIDE_PROFILES)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad number {text!r}") from None
    if not 10 <= value <= 600:
        raise argparse.ArgumentTypeError("must be 10..600")
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser(COMMAND, help="AutoNAT's verdict per host profile (3 relays as servers)")
    p.add_argument("--p2pshare", help="product command (default <repo>/.venv/bin/p2pshare; env NATLAB_P2PSHARE)")
    p.add_argument(
        "--profiles",
        type=_profiles,
        default=list(SIDE_PROFILES),
        help=f"comma-separated subset (default {','.join(SIDE_PROFILES)})",
    )
    p.add_argument(
        "--timeout", type=_timeout, default=60.0, help="seconds to wait for every confirmed verdict (default 60)"
    )
    p.add_argument("--out", type=Path, default=None, help="output dir (default $TMPDIR/natlab-autonat-<time>)")
    p.add_argument(
        "--listen",
        choices=("any", "host"),
        default="any",
        help="nodes listen on 0.0.0.0 (any) or on their host's own IP (host)",
    )


def run(args: argparse.Namespace) -> int:
    from .scenario import resolve_product

    product = resolve_product(args.p2pshare)
    out: Path = args.out or Path(tempfile.gettempdir()) / time.strftime("natlab-autonat-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    results = run_autonat(
        product, out, profiles=args.profiles, timeout=args.timeout, prefix=args.prefix, concrete=args.listen == "host"
    )
    passed, failed = write_results(
        out, COMMAND, results, {"product": product, "timeout": args.timeout, "listen": args.listen}
    )
    for r in results:
        m = r.metrics
        verdict = "pass" if r.passed else "FAIL: " + "; ".join(r.reasons)
        print(
            f"autonat/{r.variant}: {verdict} (verdict {m.get('verdict')}, expected "
            f"{m.get('expected')}, after {m.get('confirmed_after_s')} s)"
        )
    print(json.dumps({r.variant: r.metrics.get("verdict") for r in results}), file=sys.stderr)
    print(f"natlab: results in {out}/{COMMAND}.md and {out}/{COMMAND}.json")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1
