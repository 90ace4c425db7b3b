"""Apply a topology plan with ``ip``/``nft``; run processes in it; tear down.

Every namespace is named ``<prefix>-<role>`` with a per-run prefix
``nl`` + 4 hex digits (namespace and interface names are capped at 15
chars). The delay line tests use a second family, ``dl`` + 4 hex digits:
they share machines with other engineers' natlab runs, and a ``natlab
cleanup --all`` from a checkout that only knows ``nl`` cannot reach them.
``natlab internet`` uses a third, ``in``, for the same reason: its public
network lives for many minutes beside other runs. veth pairs are created
straight into their namespaces, so a run puts
nothing in the root namespace and deleting its namespaces removes all of it.
A marker file holding the owner's pid lets ``cleanup`` tell leftovers of a
crashed run from a run still going.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .topology import CORE, Plan

FAMILIES = ("nl", "dl", "in")
_FAMILY = "|".join(FAMILIES)
PREFIX_RE = re.compile(rf"^(?:{_FAMILY})[0-9a-f]{{4}}$")
NS_RE = re.compile(rf"^((?:{_FAMILY})[0-9a-f]{{4}})-[a-z0-9]+$")
MARKER_DIR = Path("/run/natlab")
CMD_TIMEOUT = 20.0


class LabError(Exception):
    """A lab step failed; the message is one line for the user."""


def preflight() -> str | None:
    """Why the lab cannot run here (one line), or None when it can."""
    if os.geteuid() != 0:
        return "natlab: needs root (network namespaces and nftables); run it as root"
    if shutil.which("ip") is None:
        return "natlab: the 'ip' command (iproute2) is missing"
    if shutil.which("nft") is None:
        return "natlab: the 'nft' command is missing; run scripts/setup.d/natlab.sh"
    return None


def check_netns() -> str | None:
    """Make and delete one namespace: why that fails (one line), or None."""
    try:
        prefix = claim_prefix()
    except LabError as e:
        return str(e)
    delete_prefix(prefix)
    return None


def _run(
    argv: Sequence[str], stdin: str | None = None, timeout: float = CMD_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


def _must(argv: Sequence[str], stdin: str | None = None) -> None:
    r = _run(argv, stdin)
    if r.returncode != 0:
        err = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise LabError(f"natlab: '{' '.join(argv[:6])}' failed: {err}")


def list_namespaces() -> list[str]:
    r = _run(["ip", "netns", "list"])
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def _ns_pids(ns: str) -> list[int]:
    r = _run(["ip", "netns", "pids", ns])
    return [int(x) for x in r.stdout.split() if x.isdigit()]


def _kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def delete_prefix(prefix: str) -> list[str]:
    """Kill every process in and delete every namespace of ``prefix``."""
    names = [n for n in list_namespaces() if n.startswith(prefix + "-")]
    for ns in names:
        _kill_pids(_ns_pids(ns))
    for ns in names:
        _run(["ip", "netns", "del", ns])
    # Nothing should be in the root namespace, but never leave a stray there.
    r = _run(["ip", "-o", "link", "show"])
    for line in r.stdout.splitlines():
        parts = line.split(":")
        if len(parts) > 1 and parts[1].strip().split("@")[0].startswith(prefix):
            _run(["ip", "link", "del", parts[1].strip().split("@")[0]])
    (MARKER_DIR / prefix).unlink(missing_ok=True)
    return names


def _owner_alive(prefix: str) -> bool:
    try:
        pid = int((MARKER_DIR / prefix).read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return False
    return b"natlab" in cmdline


def cleanup(only_prefix: str | None = None, force: bool = False) -> list[str]:
    """Delete leftovers; runs whose owner is alive are kept unless ``force``."""
    prefixes = sorted({m.group(1) for n in list_namespaces() if (m := NS_RE.match(n))})
    if MARKER_DIR.is_dir():
        prefixes = sorted(set(prefixes) | {p.name for p in MARKER_DIR.iterdir() if PREFIX_RE.match(p.name)})
    removed: list[str] = []
    for prefix in prefixes:
        if only_prefix is not None and prefix != only_prefix:
            continue
        if not force and _owner_alive(prefix):
            continue
        removed += delete_prefix(prefix)
    return removed


def claim_prefix(wanted: str | None = None, family: str = "nl") -> str:
    """Reserve a prefix by creating its core namespace (atomic: add fails if taken)."""
    if family not in FAMILIES:
        raise LabError(f"natlab: bad prefix family {family!r} (want one of {', '.join(FAMILIES)})")
    tries = 1 if wanted else 20
    for _ in range(tries):
        prefix = wanted or family + secrets.token_hex(2)
        if not PREFIX_RE.match(prefix):
            raise LabError(f"natlab: bad prefix {prefix!r} (want {'/'.join(FAMILIES)} + 4 hex digits)")
        if any(n.startswith(prefix + "-") for n in list_namespaces()):
            continue
        r = _run(["ip", "netns", "add", f"{prefix}-{CORE}"])
        if r.returncode == 0:
            MARKER_DIR.mkdir(parents=True, exist_ok=True)
            (MARKER_DIR / prefix).write_text(f"{os.getpid()}\n")
            return prefix
        if wanted or "exist" not in r.stderr.lower():
            err = (r.stderr.strip().splitlines() or ["unknown error"])[-1]
            raise LabError(f"natlab: cannot create a network namespace: {err}")
    raise LabError("natlab: no free run prefix found")


class Lab:
    """A built topology; use as a context manager so teardown always runs."""

    def __init__(self, plan: Plan, prefix: str | None = None, family: str = "nl") -> None:
        self.plan = plan
        self.prefix = claim_prefix(prefix, family)
        print(f"natlab: run prefix {self.prefix}", file=sys.stderr, flush=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        self._down = False

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def build(self) -> None:
        self._apply(self.plan, set())

    def _apply(self, p: Plan, old: set[str]) -> None:
        """Build ``p``; namespaces in ``old`` (and the core, made by claim_prefix) exist already."""
        for role in p.namespaces:
            if role != CORE and role not in old:
                _must(["ip", "netns", "add", self.ns(role)])
        for ln in p.links:
            _must(
                [
                    "ip",
                    "link",
                    "add",
                    "name",
                    ln.a_if,
                    "netns",
                    self.ns(ln.a),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    ln.b_if,
                    "netns",
                    self.ns(ln.b),
                ]
            )
        for role in p.namespaces:
            _must(["ip", "-n", self.ns(role), "-batch", "-"], "\n".join(p.ip_batches[role]) + "\n")
        for role in p.forwarding:
            _must(["ip", "netns", "exec", self.ns(role), "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for role, rules in p.rulesets.items():
            if role not in old:
                _must(["ip", "netns", "exec", self.ns(role), "nft", "-f", "-"], rules)

    def extend(self, part: Plan) -> None:
        """Add ``part``'s namespaces, links, addresses and rulesets to the built lab.

        Why: a scenario whose costly part (a public network of many nodes)
        outlives the small parts built and torn down per cell. ``part`` may
        add lines to an existing namespace's batch (the core's new transit
        links); namespaces that exist are not created again and keep their
        rulesets. What was added is removed again when this fails.
        """
        try:
            self._apply(part, set(self.plan.namespaces))
        except BaseException:
            self.retract(part)
            raise

    def retract(self, part: Plan) -> None:
        """Undo :meth:`extend`: the core's ends of ``part``'s links, then its own namespaces.

        The core's veth ends are deleted first and by name, so the next
        ``extend`` can reuse the names at once (a deleted namespace's devices
        vanish asynchronously). Processes still running in the namespaces are
        killed; stop them gracefully before, when that matters.
        """
        mine = [r for r in part.namespaces if r != CORE and r not in self.plan.namespaces]
        for ln in part.links:
            for role, ifname in ((ln.a, ln.a_if), (ln.b, ln.b_if)):
                if role not in mine:
                    _run(["ip", "-n", self.ns(role), "link", "del", ifname])
        for role in mine:
            _kill_pids(_ns_pids(self.ns(role)))
        for role in mine:
            _run(["ip", "netns", "del", self.ns(role)])
        self.procs = [proc for proc in self.procs if proc.poll() is None]

    def exec_argv(self, role: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns(role), *argv]

    def run(
        self, role: str, argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run to completion inside ``role`` (killed when ``timeout`` passes)."""
        try:
            return subprocess.run(
                self.exec_argv(role, argv),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=None if env is None else dict(env),
            )
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            return subprocess.CompletedProcess(e.cmd, -9, out, "natlab: timed out")

    def spawn(
        self,
        role: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdout: int | IO[bytes] | None = None,
        stderr: int | IO[bytes] | None = None,
        cwd: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process inside ``role``; teardown ends it.

        The two endpoints (sharer ``shr``, receiver ``rcv``) run on CPUs of
        their own when the machine has two (see :func:`endpoint_cpu`).
        """
        proc = subprocess.Popen(
            [*_pin_argv(role), *self.exec_argv(role, argv)],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 3.0) -> int:
        """SIGINT, then SIGTERM, then SIGKILL, each bounded; returns the exit code."""
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 1.0), (signal.SIGKILL, 2.0)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        code = proc.poll()
        return -9 if code is None else code

    def teardown(self) -> None:
        """Idempotent; signals are ignored meanwhile so a second Ctrl-C can't cut it short."""
        if self._down:
            return
        self._down = True
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for proc in self.procs:
                if proc.poll() is None:
                    self.stop(proc, grace=0.5)
            delete_prefix(self.prefix)
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def __enter__(self) -> Lab:
        try:
            self.build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()


@contextmanager
def lab(plan: Plan, prefix: str | None = None) -> Iterator[Lab]:
    """Build ``plan`` and always tear it down."""
    with Lab(plan, prefix) as built:
        yield built


def wait_line(stream: IO[bytes], deadline: float) -> bytes:
    """Read one line before ``deadline`` (monotonic); b"" on EOF or time out."""
    import select

    buf = b""
    fd = stream.fileno()
    while time.monotonic() < deadline and len(buf) < 65536:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        chunk = os.read(fd, 1)
        if not chunk:
            break
        buf += chunk
        if chunk == b"\n":
            break
    return buf


#: Hosts that stand for two different machines of the internet.
ENDPOINTS = ("shr", "rcv")
NO_PIN_ENV = "NATLAB_NO_PIN"


def endpoint_cpu(role: str) -> int | None:
    """The CPU a lab endpoint runs on, or None (not an endpoint, one CPU, or NATLAB_NO_PIN=1).

    The lab has no link delay: between two NATs that answer strangers with
    a reset (cone-rst), only SYNs that cross in flight get through, and
    with sharer and receiver scheduled on the same CPU of a 2-core machine
    the two SYNs are never in flight together -- pinned to one CPU, 6 of 6
    cone-rst:cone-rst runs failed, 0 wins in 60 rounds; on separate CPUs
    6 of 6 passed. Real endpoints are separate machines: so are these.
    """
    if role not in ENDPOINTS or os.environ.get(NO_PIN_ENV, "") not in ("", "0"):
        return None
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    if len(cpus) < 2:
        return None
    return cpus[ENDPOINTS.index(role) % len(cpus)]


def _pin_argv(role: str) -> list[str]:
    """``taskset -c N`` for an endpoint with a CPU of its own (nothing if taskset is missing)."""
    cpu = endpoint_cpu(role)
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cpu)] if cpu is not None and taskset else []
