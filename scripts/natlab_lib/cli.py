"""``scripts/natlab``: build real NATs in network namespaces and test through them.

Exit codes: 0 all passed, 1 some check failed, 2 bad input or the lab cannot
run here (not root, no netns, no product), 130 SIGINT, 143 SIGTERM.
Teardown runs on every exit path: try/finally in each Lab, SIGTERM turned
into an exception so the finally blocks run, and ``natlab cleanup`` for what
a SIGKILLed run left behind.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from . import cli_extra, matrix, netns, probe
from .profiles import ALL_PROFILES, DESCRIPTIONS, SAME_LAN, parse_profiles
from .topology import plan, probe_spec


class Terminated(BaseException):
    """SIGTERM/SIGHUP, raised so every ``finally`` (teardown) runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


def _cells(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in text.split(","):
        s, sep, r = item.strip().partition(":")
        if not sep or s not in ALL_PROFILES or r not in ALL_PROFILES or (SAME_LAN in (s, r) and s != r):
            raise argparse.ArgumentTypeError(f"bad cell {item!r}: want SHARER:RECEIVER from {', '.join(ALL_PROFILES)}")
        out.append((s, r))
    return out


def _profiles(text: str) -> list[str]:
    try:
        return parse_profiles(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _size(text: str) -> int:
    mult = {"k": 1 << 10, "m": 1 << 20}.get(text[-1:].lower(), 1)
    try:
        n = int(text[:-1] if mult > 1 else text) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {text!r}") from None
    if not 1 <= n <= 1 << 30:
        raise argparse.ArgumentTypeError("size must be 1 byte .. 1 GiB")
    return n


def _parser() -> argparse.ArgumentParser:
    profiles_help = "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items())
    ap = argparse.ArgumentParser(
        prog="natlab", description=f"Real Linux NATs in network namespaces (needs root). Profiles — {profiles_help}."
    )
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    every = ",".join(ALL_PROFILES)

    p = sub.add_parser("probe", help="check each profile's NAT behaviour with socket probes")
    p.add_argument(
        "--profiles", type=_profiles, default=list(ALL_PROFILES), help=f"comma-separated subset (default {every})"
    )
    p.add_argument("--json", type=Path, help="also write the results to this file")

    def product_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--p2pshare", help="product command (default <repo>/.venv/bin/p2pshare; env NATLAB_P2PSHARE)")
        sp.add_argument("--size", type=_size, default=1 << 20, help="file size, e.g. 4m")
        sp.add_argument("--timeout", type=float, default=30.0, help="getter --timeout seconds")
        sp.add_argument(
            "--relay",
            choices=("auto", "on", "off"),
            default="auto",
            help="start 'p2pshare relay' on the relay host (auto: when the build has it)",
        )
        sp.add_argument("--out", type=Path, default=None, help="output dir (default $TMPDIR/natlab-<time>)")

    p = sub.add_parser("run", help="one scenario with the product CLI")
    p.add_argument("sharer", choices=ALL_PROFILES, metavar="SHARER", help=f"sharer's profile: {every}")
    p.add_argument(
        "receiver", choices=ALL_PROFILES, metavar="RECEIVER", help="receiver's profile (same-lan only with same-lan)"
    )
    product_args(p)

    p = sub.add_parser("matrix", help="every ordered pair of profiles with the product CLI")
    p.add_argument(
        "--profiles", type=_profiles, default=list(ALL_PROFILES), help=f"comma-separated subset (default {every})"
    )
    p.add_argument(
        "--cells",
        type=_cells,
        default=None,
        metavar="S:R,...",
        help="only these (sharer:receiver) cells, e.g. cone:cone,symmetric:cone",
    )
    product_args(p)

    p = sub.add_parser("up", help="build the probe topology and hold it for manual use")
    p.add_argument("--profiles", type=_profiles, default=list(ALL_PROFILES))
    p.add_argument(
        "--for", dest="hold", type=float, default=600.0, help="seconds to hold before tearing down (max 3600)"
    )

    p = sub.add_parser("cleanup", help="delete namespaces left by crashed runs")
    p.add_argument("--prefix", help="only this run prefix (nlXXXX)")
    p.add_argument("--all", action="store_true", help="also runs whose owner is alive")

    cli_extra.add_parsers(sub, _size)

    for sp in sub.choices.values():
        if sp.prog.split()[-1] != "cleanup":
            sp.add_argument("--prefix", dest="prefix", help="run prefix nl, dl or in + 4 hex (default: random, free)")
    return ap


def _product(args: argparse.Namespace) -> tuple[list[str], bool, Path]:
    from .scenario import product_has_relay, resolve_product

    product = resolve_product(args.p2pshare)
    relay = args.relay == "on" or (args.relay == "auto" and product_has_relay(product))
    out = args.out or Path(tempfile.gettempdir()) / time.strftime("natlab-%Y%m%d-%H%M%S")
    return product, relay, out


def _cmd_probe(args: argparse.Namespace) -> int:
    results = probe.run_probe(args.profiles, args.prefix)
    print(probe.render(results))
    if args.json:
        args.json.write_text(json.dumps(probe.to_json(results), indent=1) + "\n")
    bad = sum(not r.ok for r in results)
    print(f"{len(results) - bad} passed, {bad} failed")
    return 1 if bad else 0


def _cmd_matrix(args: argparse.Namespace, pairs: list[tuple[str, str]] | None) -> int:
    product, relay, out = _product(args)
    if pairs is None:
        results = matrix.run_matrix(
            product, args.profiles, out, size=args.size, timeout=args.timeout, use_relay=relay, prefix=args.prefix
        )
    else:
        out.mkdir(parents=True, exist_ok=True)
        results = [
            matrix.run_cell(
                product, s, r, out, size=args.size, timeout=args.timeout, use_relay=relay, prefix=args.prefix
            )
            for s, r in pairs
        ]
        matrix.write_outputs(out, results, {"product": product, "relay": relay})
    print(matrix.render(results), end="")
    print(f"natlab: results in {out}/matrix.md and {out}/matrix.json")
    passed = sum(r.passed for r in results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


def _cmd_up(args: argparse.Namespace) -> int:
    spec, _ = probe_spec(args.profiles)
    with netns.Lab(plan(spec), args.prefix) as lab:
        print(json.dumps({"ready": True, "prefix": lab.prefix, **lab.plan.describe()}), flush=True)
        print(
            f"natlab: up; run commands with: ip netns exec {lab.prefix}-<host> CMD; Ctrl-C tears down",
            file=sys.stderr,
            flush=True,
        )
        end = time.monotonic() + min(max(args.hold, 0.0), 3600.0)
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "run":
        if (args.sharer == "same-lan") != (args.receiver == "same-lan"):
            print("natlab: same-lan pairs only with itself: natlab run same-lan same-lan", file=sys.stderr)
            return 2
    if args.prefix is not None and not netns.PREFIX_RE.match(args.prefix):
        print(f"natlab: bad prefix {args.prefix!r} (want nl, dl or in + 4 hex digits)", file=sys.stderr)
        return 2
    why = netns.preflight()
    if why is None and args.cmd != "cleanup":
        why = netns.check_netns()
    if why is not None:
        print(why, file=sys.stderr)
        return 2
    # Started in the background by a shell, SIGINT may arrive ignored: restore
    # it so Ctrl-C/SIGINT always means "tear down and exit 130".
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:
        if args.cmd == "cleanup":
            removed = netns.cleanup(args.prefix, force=args.all or args.prefix is not None)
            print(f"natlab: removed {len(removed)} namespaces")
            return 0
        if args.cmd == "probe":
            return _cmd_probe(args)
        if args.cmd == "up":
            return _cmd_up(args)
        if args.cmd == "run":
            return _cmd_matrix(args, [(args.sharer, args.receiver)])
        if args.cmd in cli_extra.COMMANDS:
            return cli_extra.run(args)
        if args.cmd == "autonat":
            from . import autonat

            return autonat.run(args)
        if args.cmd == "limited":
            from . import limited

            return limited.run(args)
        if args.cmd == "delay-check":
            from . import delaycheck

            return delaycheck.run(args)
        if args.cmd == "internet":
            from . import internet

            return internet.run(args)
        return _cmd_matrix(args, args.cells)
    except netns.LabError as e:
        print(str(e), file=sys.stderr)
        return 2
    except OSError as e:  # e.g. an unwritable --out or --json
        print(f"natlab: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("natlab: interrupted; torn down", file=sys.stderr)
        return 130
    except Terminated as t:
        print("natlab: terminated; torn down", file=sys.stderr)
        return 128 + t.signum
