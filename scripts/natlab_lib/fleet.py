"""Many product processes in one lab: the plumbing of the multi-node scenarios.

``Fleet`` builds one topology (its own run prefix), starts ``p2pshare
relay``/``share``/``get`` on its hosts with per-node ``P2PSHARE_HOME``
folders and ``P2PSHARE_NO_DEFAULT_BOOTSTRAP=1`` (a closed lab never joins
the public DHT), logs every process under the variant's folder and tears it
all down on every exit path. ``Outcome`` is what one variant reports.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from .netns import Lab, LabError
from .scenario import START_TIMEOUT, Proc, _digest, _make_file, _relay_addr, normalize_path
from .topology import TopologySpec, plan

LISTEN_PORT = 4001
MAX_EVENTS_SCANNED = 100_000


@dataclass
class Outcome:
    """One variant of a scenario: pass/fail with reasons and what was measured."""

    scenario: str
    variant: str
    passed: bool = False
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, object] = field(default_factory=dict)
    wall_s: float = 0.0

    def check(self, ok: bool, reason: str) -> bool:
        if not ok:
            self.reasons.append(reason)
        return ok


# -- share codes (stdlib only: the lab never imports the product) -------------


def decode_code(code: str) -> dict[str, object]:
    """The JSON object of a v1 code (URL-safe base64, padding optional)."""
    body = "".join(code.split()).rstrip("=")
    obj = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    if not isinstance(obj, dict):
        raise ValueError("a v1 code holds a JSON object")
    return obj


def encode_code(obj: dict[str, object]) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def without_addresses(code: str) -> str:
    """The same code with no address at all: only the DHT can find the sharer."""
    obj = decode_code(code)
    obj["addresses"] = []
    return encode_code(obj)


def code_addresses(code: str) -> list[str]:
    addrs = decode_code(code).get("addresses")
    return [a for a in addrs if isinstance(a, str)] if isinstance(addrs, list) else []


def relay_ips(addresses: Sequence[str]) -> list[str]:
    """IPs of the relays named in the circuit addresses, in order, once each."""
    out: list[str] = []
    for a in addresses:
        m = re.match(r"^/ip4/([0-9.]+)/.*/p2p-circuit", a)
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


# -- a getter's story, from its JSON events -----------------------------------


@dataclass
class GetReport:
    exit_code: int | None
    connects: list[tuple[float, str | None]]  # (s since start, path)
    progress: list[tuple[float, int, int]]  # (s since start, bytes, total)
    done: dict[str, object] | None
    done_s: float | None
    error: str | None
    verified: bool

    def as_metrics(self) -> dict[str, object]:
        first = next((t for t, b, _ in self.progress if b > 0), None)
        complete = next((t for t, b, tot in self.progress if b >= tot), None)
        return {
            "exit_code": self.exit_code,
            "connects": self.connects,
            "connect_s": self.connects[0][0] if self.connects else None,
            "first_progress_s": first,
            "all_verified_s": complete,
            "done_s": self.done_s,
            "done_bytes": (self.done or {}).get("bytes"),
            "error": self.error,
            "verified": self.verified,
        }


def read_get(proc: Proc, exit_code: int | None, out_dir: Path, name: str, digest: str) -> GetReport:
    """Summarise a finished getter; ``verified`` compares the file's SHA-256."""
    t0 = proc.started
    connects: list[tuple[float, str | None]] = []
    progress: list[tuple[float, int, int]] = []
    done: dict[str, object] | None = None
    done_s: float | None = None
    error: str | None = None
    for t, ev in proc.events[:MAX_EVENTS_SCANNED]:
        kind = ev.get("event")
        if kind == "connected":
            connects.append((round(t - t0, 3), normalize_path(ev.get("path"))))
        elif kind == "progress":
            b, tot = ev.get("bytes"), ev.get("total")
            if isinstance(b, int) and isinstance(tot, int):
                progress.append((round(t - t0, 3), b, tot))
        elif kind == "done" and done is None:
            done, done_s = ev, round(t - t0, 3)
        elif kind == "error" and error is None:
            error = str(ev.get("message", "error"))[:300]
    found = [p for p in sorted(out_dir.rglob(name))[:10] if p.is_file()]
    verified = bool(found) and _digest(found[0]) == digest
    return GetReport(exit_code, connects, progress, done, done_s, error, verified)


# -- the fleet -------------------------------------------------------------------


class Fleet:
    """A built lab plus the product processes started in it (``with Fleet(...)``)."""

    def __init__(
        self,
        product: list[str],
        spec: TopologySpec,
        logdir: Path,
        prefix: str | None = None,
        concrete_listen: bool = False,
    ) -> None:
        self.product = product
        # Listen on the host's own IP instead of 0.0.0.0 (works around the
        # product advertising 0.0.0.0 in identify and signed peer records).
        self.concrete_listen = concrete_listen
        self.spec = spec
        self.logdir = logdir
        self.prefix = prefix
        self.procs: list[Proc] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="natlab-fleet-"))
        self._lab: Lab | None = None

    @property
    def lab(self) -> Lab:
        if self._lab is None:
            raise RuntimeError("Fleet used outside its 'with'")
        return self._lab

    def __enter__(self) -> Fleet:
        self.logdir.mkdir(parents=True, exist_ok=True)
        try:
            self._lab = Lab(plan(self.spec), self.prefix).__enter__()
            (self.logdir / "topology.json").write_text(
                json.dumps(dict(self.lab.plan.describe(), prefix=self.lab.prefix), indent=1) + "\n"
            )
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process, delete the namespaces and the temp folder (idempotent)."""
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            if self._lab is not None:
                for p in reversed(self.procs):  # clients before the relays they use
                    if p.proc.poll() is None:
                        self._lab.stop(p.proc, grace=0.5)
                for p in self.procs:
                    p.close(self._lab)
                self._lab.teardown()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            shutil.rmtree(self.tmp, ignore_errors=True)

    def ip(self, host: str) -> str:
        return self.lab.plan.hosts[host].ip

    def public_ip(self, host: str) -> str:
        return self.lab.plan.hosts[host].public_ip

    def listen(self, host: str, port: int = LISTEN_PORT) -> str:
        ip = self.ip(host) if self.concrete_listen else "0.0.0.0"
        return f"/ip4/{ip}/tcp/{port}"

    def home(self, name: str) -> Path:
        home = self.tmp / f"home-{name}"
        home.mkdir(exist_ok=True)
        return home

    def env(self, home: Path) -> dict[str, str]:
        return dict(os.environ, P2PSHARE_HOME=str(home), P2PSHARE_NO_DEFAULT_BOOTSTRAP="1")

    def start(self, host: str, name: str, args: Sequence[str], home: Path) -> Proc:
        """Start the product; ``NATLAB_PRODUCT_VERBOSE=N`` adds N ``-v`` (logs in .err)."""
        raw = os.environ.get("NATLAB_PRODUCT_VERBOSE", "0")
        verbose = ["-v"] * min(int(raw), 3) if raw.isdigit() else []
        proc = Proc(self.lab, host, name, [*self.product, *verbose, *args], self.env(home), self.logdir)
        self.procs.append(proc)
        return proc

    def make_file(self, name: str, size: int, seed: int) -> tuple[Path, str]:
        return _make_file(self.tmp / f"src-{name}", size, seed)

    # -- roles -----------------------------------------------------------------
    def relay(self, host: str, bootstrap: Sequence[str] = (), limits: Sequence[str] = ()) -> tuple[Proc, str]:
        """Start ``p2pshare relay`` (relay + DHT server) on a public host; its multiaddr."""
        args = ["relay", "--json", "--listen", self.listen(host), *limits]
        for b in bootstrap:
            args += ["--bootstrap", b]
        proc = self.start(host, host, args, self.home(host))
        ev = first_event(proc, host)
        return proc, _relay_addr(ev, self.ip(host))

    def share_args(
        self,
        host: str,
        paths: Sequence[Path],
        *,
        port: int = LISTEN_PORT,
        relays: Sequence[str] = (),
        bootstrap: Sequence[str] = (),
        autorelay: bool = True,
    ) -> list[str]:
        args = ["share", *map(str, paths), "--json", "--listen", self.listen(host, port)]
        if not autorelay:
            args.append("--no-autorelay")
        for r in relays:
            args += ["--relay", r]
        for b in bootstrap:
            args += ["--bootstrap", b]
        return args

    def share(
        self, host: str, name: str, home: Path, paths: Sequence[Path], **kw: object
    ) -> tuple[Proc, dict[str, object]]:
        """Start a sharer and wait (bounded) for its ``shared`` event."""
        proc = self.start(host, name, self.share_args(host, paths, **kw), home)  # type: ignore[arg-type]
        return proc, shared_event(proc, name)

    def get(self, host: str, name: str, code: str, out: Path, *, timeout: float, bootstrap: Sequence[str] = ()) -> Proc:
        args = ["get", code, "-o", str(out), "--json", "--timeout", str(timeout)]
        for b in bootstrap:
            args += ["--bootstrap", b]
        out.mkdir(parents=True, exist_ok=True)
        return self.start(host, name, args, self.home(name))

    def finish_get(self, proc: Proc, out: Path, filename: str, digest: str, deadline: float) -> GetReport:
        """Wait for a getter to exit (killed at ``deadline``) and summarise it."""
        code = proc.wait(deadline)
        closed = proc.close(self.lab)
        return read_get(proc, code if code is not None else closed, out, filename, digest)

    def kill(self, proc: Proc) -> None:
        """SIGKILL, no goodbye: what a crash or a pulled plug looks like to peers."""
        try:
            os.killpg(proc.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(time.monotonic() + 5)

    def throttle(self, host: str, rate: str, dev: str = "eth0") -> None:
        """Cap ``host``'s egress with a TBF qdisc (the lab kernel has TBF, not netem)."""
        r = self.lab.run(
            host,
            ["tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", "64kb", "latency", "400ms"],
            timeout=10,
        )
        if r.returncode != 0:
            raise LabError(f"natlab: tc tbf on {host} failed: {r.stderr.strip()[:200]}")

    def bytes_sent_to(self, host: str, peer_ip: str) -> int:
        """TCP payload bytes ``host`` has sent to ``peer_ip`` on open sockets (from ss)."""
        r = self.lab.run(host, ["ss", "-tinH"], timeout=10)
        return sum_bytes_sent(r.stdout, peer_ip)

    def rss_mib(self) -> float:
        """Total resident memory of the fleet's live processes."""
        total = 0
        for p in self.procs:
            try:
                for line in Path(f"/proc/{p.proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except (OSError, ValueError, IndexError):
                continue
        return round(total / 1024, 1)


def sum_bytes_sent(ss_output: str, peer_ip: str) -> int:
    """Sum ``bytes_sent`` of the sockets whose peer is ``peer_ip`` in ``ss -tinH`` text."""
    total = 0
    current_peer: str | None = None
    for line in ss_output.splitlines()[:10_000]:
        fields = line.split()
        addr_fields = [f for f in fields if re.match(r"^[0-9.]+:\d+$", f)]
        if len(addr_fields) >= 2 and not line.startswith((" ", "\t")):
            current_peer = addr_fields[1].rsplit(":", 1)[0]
            continue
        m = re.search(r"\bbytes_sent:(\d+)", line)
        if m and current_peer == peer_ip:
            total += int(m.group(1))
    return total


def first_event(proc: Proc, what: str, timeout: float = START_TIMEOUT) -> dict[str, object]:
    got = proc.next_event(time.monotonic() + timeout)
    if got is None:
        raise LabError(f"{what} printed no JSON line within {timeout:.0f}s (see {proc.name}.err)")
    return got[1]


def shared_event(proc: Proc, what: str) -> dict[str, object]:
    ev = first_event(proc, what)
    if ev.get("event") != "shared" or not isinstance(ev.get("code"), str):
        raise LabError(f"{what}'s first line is not a 'shared' event: {str(ev)[:200]}")
    return ev


def wait_event(proc: Proc, pred: Callable[[dict[str, object]], bool], deadline: float) -> dict[str, object] | None:
    """Consume events until one satisfies ``pred``; None on EOF or ``deadline``."""
    for _ in range(MAX_EVENTS_SCANNED):
        got = proc.next_event(deadline)
        if got is None:
            return None
        if pred(got[1]):
            return got[1]
    return None


def run_variants(variants: Sequence[tuple[str, Callable[[Outcome], None]]], scenario: str) -> list[Outcome]:
    """Run each variant; a lab error fails that variant with its one-line reason."""
    results: list[Outcome] = []
    for name, fn in variants:
        res = Outcome(scenario, name)
        wall = time.monotonic()
        try:
            fn(res)
        except LabError as e:
            res.reasons.append(str(e))
        res.wall_s = round(time.monotonic() - wall, 3)
        res.passed = not res.reasons
        results.append(res)
        print(
            f"natlab: {scenario}/{name}: " + ("pass" if res.passed else "FAIL " + "; ".join(res.reasons)),
            file=sys.stderr,
            flush=True,
        )
    return results


def write_results(out: Path, scenario: str, results: list[Outcome], meta: dict[str, object]) -> tuple[int, int]:
    """``out/<scenario>.json`` and a readable ``out/<scenario>.md``; (passed, failed)."""
    passed = sum(r.passed for r in results)
    failed = len(results) - passed
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{scenario}.json").write_text(
        json.dumps(
            {"scenario": scenario, "passed": passed, "failed": failed, **meta, "outcomes": [vars(r) for r in results]},
            indent=1,
            default=str,
        )
        + "\n"
    )
    lines = [f"# natlab {scenario}", "", "| variant | result | wall s | metrics |", "|---|---|---|---|"]
    for r in results:
        verdict = "pass" if r.passed else "FAIL: " + "; ".join(r.reasons)
        metrics = json.dumps(r.metrics, default=str)[:600]
        lines.append(f"| {r.variant} | {verdict.replace('|', '/')} | {r.wall_s:.1f} | {metrics.replace('|', '/')} |")
    (out / f"{scenario}.md").write_text("\n".join(lines) + f"\n\n{passed} passed, {failed} failed\n")
    return passed, failed
