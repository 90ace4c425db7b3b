"""The ``stale``, ``relay-kill``, ``net20`` and ``lan`` subcommands of ``scripts/natlab``.

Each prints a table, ``N passed, N failed`` as its last stdout line, writes
``<out>/<scenario>.json`` / ``.md`` plus every process's logs under
``<out>/<variant>/``, and exits 0 when all passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .fleet import Outcome, write_results
from .netns import LabError

COMMANDS = ("stale", "relay-kill", "net20", "lan")
STALE_VARIANTS = ("port", "move")
LAN_VARIANTS = ("direct", "short", "stale", "moved", "offline")


def _positive(kind: Callable[[str], Any], lo: float, hi: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad number {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be {lo:g}..{hi:g}")
        return value

    return parse


def _variants(text: str, known: tuple[str, ...] = STALE_VARIANTS) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in names if v not in known]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown variant {bad[0] if bad else text!r} (known: {', '.join(known)})")
    return list(dict.fromkeys(names))


def _lan_variants(text: str) -> list[str]:
    return _variants(text, LAN_VARIANTS)


def add_parsers(sub: Any, size: Callable[[str], int]) -> None:
    """Register the subcommands on ``scripts/natlab``'s subparsers."""

    def common(sp: argparse.ArgumentParser, default_size: str, timeout: float) -> None:
        sp.add_argument("--p2pshare", help="product command (default <repo>/.venv/bin/p2pshare; env NATLAB_P2PSHARE)")
        sp.add_argument(
            "--size", type=size, default=size(default_size), help=f"file size, e.g. 4m (default {default_size})"
        )
        sp.add_argument(
            "--timeout",
            type=_positive(float, 1, 600),
            default=timeout,
            help=f"getter --timeout seconds (default {timeout:g})",
        )
        sp.add_argument("--out", type=Path, default=None, help="output dir (default $TMPDIR/natlab-<command>-<time>)")
        sp.add_argument(
            "--listen",
            choices=("any", "host"),
            default="any",
            help="product nodes listen on 0.0.0.0 (any: the product's default) "
            "or on their host's own IP (host: for builds that advertise "
            "/ip4/0.0.0.0 to the DHT)",
        )

    p = sub.add_parser("stale", help="an old code whose addresses are stale: found via the DHT")
    common(p, "256k", 30.0)
    p.add_argument(
        "--variants",
        type=_variants,
        default=list(STALE_VARIANTS),
        help="port (public sharer restarts on another port), move (sharer moves "
        "from a cone LAN + relay A to a symmetric LAN + relay B); default both",
    )
    p.add_argument(
        "--no-control",
        dest="control",
        action="store_false",
        help="skip the getter without DHT that proves the old code is stale",
    )

    p = sub.add_parser("relay-kill", help="kill the relay mid-transfer: resume over another")
    common(p, "8m", 30.0)
    p.add_argument("--rate", default="16mbit", help="TBF egress cap on each relay host, tc syntax (default 16mbit)")

    p = sub.add_parser("net20", help="a share found by its address-less code among many nodes")
    common(p, "1m", 60.0)
    p.add_argument(
        "--nodes", type=_positive(int, 4, 52), default=20, help="p2pshare processes behind the NATs (default 20)"
    )
    p.add_argument(
        "--servers", type=_positive(int, 1, 8), default=2, help="public relay + DHT server nodes (default 2)"
    )
    p.add_argument(
        "--parallel",
        type=_positive(int, 1, 8),
        default=2,
        help="nodes started at once (default 2: the machine's cores)",
    )
    p.add_argument(
        "--fetch-extra",
        type=_positive(int, 0, 10),
        default=2,
        help="small shares also fetched by address-less code (default 2)",
    )

    p = sub.add_parser("lan", help="two hosts on one bridge, no bootstrap: found by mDNS only")
    common(p, "1m", 30.0)
    p.add_argument(
        "--variants",
        type=_lan_variants,
        default=list(LAN_VARIANTS),
        help="direct (a good code; first byte timed), stale (sharer restarted on another port), "
        "moved (the same share from a new identity), offline (moved, bootstrap out of reach); default all",
    )
    p.add_argument("--runs", type=_positive(int, 1, 20), default=3, help="getter runs of 'direct' (default 3)")

    from . import autonat

    autonat.add_parser(sub)
    from . import limited

    limited.add_parser(sub, size)
    from . import delaycheck

    delaycheck.add_parser(sub, size)
    from . import internet

    internet.add_parser(sub, size)


def run(args: argparse.Namespace) -> int:
    from .scenario import resolve_product

    product = resolve_product(args.p2pshare)
    out: Path = args.out or Path(tempfile.gettempdir()) / time.strftime(f"natlab-{args.cmd}-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, object] = {"product": product, "size": args.size, "timeout": args.timeout, "listen": args.listen}
    concrete = args.listen == "host"
    results: list[Outcome]
    if args.cmd == "stale":
        from .stale import run_stale

        results = run_stale(
            product,
            out,
            size=args.size,
            timeout=args.timeout,
            prefix=args.prefix,
            variants=args.variants,
            control=args.control,
            concrete=concrete,
        )
    elif args.cmd == "relay-kill":
        from .relaykill import run_relay_kill

        meta["rate"] = args.rate
        results = run_relay_kill(
            product, out, size=args.size, timeout=args.timeout, rate=args.rate, prefix=args.prefix, concrete=concrete
        )
    elif args.cmd == "net20":
        from .net20 import run_net20

        meta.update(nodes=args.nodes, servers=args.servers, parallel=args.parallel)
        results = run_net20(
            product,
            out,
            nodes=args.nodes,
            servers=args.servers,
            size=args.size,
            timeout=args.timeout,
            parallel=args.parallel,
            fetch_extra=args.fetch_extra,
            prefix=args.prefix,
            concrete=concrete,
        )
    elif args.cmd == "lan":
        from .lan import run_lan

        meta["runs"] = args.runs
        results = run_lan(product, out, variants=args.variants, prefix=args.prefix, runs=args.runs, size=args.size)
    else:  # pragma: no cover - argparse restricts the choices
        raise LabError(f"natlab: unknown command {args.cmd}")
    passed, failed = write_results(out, args.cmd, results, meta)
    for r in results:
        verdict = "pass" if r.passed else "FAIL: " + "; ".join(r.reasons)
        print(f"{args.cmd}/{r.variant}: {verdict} ({r.wall_s:.1f} s)")
        print("  " + json.dumps(r.metrics, default=str)[:400])
    if failed and not concrete:
        print(
            "natlab: hint: if DHT lookups found no usable address, try --listen host (builds "
            "that advertise /ip4/0.0.0.0 in identify/peer records need it)",
            file=sys.stderr,
        )
    print(f"natlab: results in {out}/{args.cmd}.md and {out}/{args.cmd}.json")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1
