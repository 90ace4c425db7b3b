"""Run one sharer/receiver scenario with the product CLI inside a fresh lab.

Each scenario gets its own topology and run prefix, so conntrack state of
one cell can never leak into the next. The product is started with
``ip netns exec``; every process's stdout and stderr go to the cell's
output folder, and its JSON event lines are timestamped as they arrive.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import random
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .netns import Lab, LabError
from .topology import plan, scenario_spec

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PRODUCT = REPO / ".venv" / "bin" / "p2pshare"
LISTEN = "/ip4/0.0.0.0/tcp/4001"
MAX_LINE = 65536
START_TIMEOUT = 30.0


def resolve_product(arg: str | None) -> list[str]:
    """The product command line; LabError (one line) when it is not there."""
    text = arg or os.environ.get("NATLAB_P2PSHARE") or str(DEFAULT_PRODUCT)
    try:
        argv = shlex.split(text)
    except ValueError:
        argv = []
    exe = shutil.which(argv[0]) if argv else None
    if exe is None:
        raise LabError(f"natlab: p2pshare not found at {text} (build the product into .venv, or pass --p2pshare)")
    return [exe, *argv[1:]]


def product_has_relay(product: list[str]) -> bool:
    """Whether this build has ``p2pshare relay`` (it arrives after share/get)."""
    try:
        r = subprocess.run([*product, "relay", "--help"], capture_output=True, timeout=START_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


class Proc:
    """A lab process whose stdout lines are logged and timestamped by a thread."""

    def __init__(self, lab: Lab, host: str, name: str, argv: list[str], env: Mapping[str, str], logdir: Path) -> None:
        self.name = name
        self.events: list[tuple[float, dict[str, object]]] = []
        self._queue: queue.Queue[tuple[float, dict[str, object]] | None] = queue.Queue()
        self._out = open(logdir / f"{name}.out", "wb")
        self._err = open(logdir / f"{name}.err", "wb")
        (logdir / f"{name}.cmd").write_text(shlex.join(lab.exec_argv(host, argv)) + "\n")
        self.started = time.monotonic()
        self.proc = lab.spawn(host, argv, env=env, stdout=subprocess.PIPE, stderr=self._err)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        stream: IO[bytes] | None = self.proc.stdout
        assert stream is not None
        for _ in range(1_000_000):
            line = stream.readline(MAX_LINE)
            if not line:
                break
            now = time.monotonic()
            self._out.write(line)
            self._out.flush()
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.events.append((now, event))
                self._queue.put((now, event))
        self._queue.put(None)

    def next_event(self, deadline: float) -> tuple[float, dict[str, object]] | None:
        """The next JSON event before ``deadline``; None on EOF or time out."""
        try:
            return self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def wait(self, deadline: float) -> int | None:
        try:
            return self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return None

    def close(self, lab: Lab) -> int:
        code = lab.stop(self.proc)
        self._thread.join(timeout=2.0)
        self._out.close()
        self._err.close()
        return code


@dataclass
class CellResult:
    """One scenario's outcome; times are seconds since the getter started."""

    sharer: str
    receiver: str
    size: int
    relay: bool = False
    connected: bool = False
    path: str | None = None
    upgraded: bool = False
    upgraded_path: str | None = None
    upgrade_s: float | None = None  # from connected to upgraded
    connect_s: float | None = None
    ttfb_s: float | None = None
    total_s: float | None = None
    throughput_mib_s: float | None = None
    verified: bool = False
    exit_code: int | None = None
    sharer_exit: int | None = None  # set when the sharer died before the getter ended
    error: str | None = None
    wall_s: float = 0.0
    expect: str = ""
    passed: bool = False
    reasons: list[str] = field(default_factory=list)


def normalize_path(raw: object) -> str | None:
    if not isinstance(raw, str):
        return None
    text = raw.lower().replace("_", "-")
    if text in ("hole-punched", "holepunched", "hole-punch", "punched", "dcutr"):
        return "hole-punched"
    if text in ("relayed", "relay", "circuit", "p2p-circuit"):
        return "relayed"
    return text


def _first_json(proc: Proc, what: str) -> dict[str, object]:
    got = proc.next_event(time.monotonic() + START_TIMEOUT)
    if got is None:
        raise LabError(f"{what} printed no JSON line within {START_TIMEOUT:.0f}s (see {proc.name}.err)")
    return got[1]


def _relay_addr(event: dict[str, object], ip: str) -> str:
    peer = event.get("peer_id")
    addrs = event.get("addresses", event.get("addrs"))
    if isinstance(addrs, list):
        for a in addrs:
            if isinstance(a, str) and f"/ip4/{ip}/" in a:
                return a if "/p2p/" in a else f"{a}/p2p/{peer}"
    if not isinstance(peer, str):
        raise LabError("relay's first JSON line has no peer_id")
    return f"/ip4/{ip}/tcp/4001/p2p/{peer}"


def _make_file(folder: Path, size: int, seed: int) -> tuple[Path, str]:
    folder.mkdir(parents=True)
    path = folder / f"natlab-{size}.bin"
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for _ in range(1 << 20):
            block = f.read(1 << 20)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _measure(res: CellResult, getter: Proc) -> None:
    t0 = getter.started
    t_conn: float | None = None
    for t, ev in getter.events:
        kind = ev.get("event")
        if kind == "connected" and t_conn is None:
            t_conn = t
            res.connected = True
            res.path = normalize_path(ev.get("path"))
            res.connect_s = round(t - t0, 3)
        elif kind == "progress" and res.ttfb_s is None:
            done = ev.get("bytes", ev.get("done", 1))
            if isinstance(done, int) and done > 0:
                res.ttfb_s = round(t - t0, 3)
        elif kind == "upgraded" and not res.upgraded:
            res.upgraded = True
            res.upgraded_path = normalize_path(ev.get("path", "direct"))
            if t_conn is not None:
                res.upgrade_s = round(t - t_conn, 3)
        elif kind == "done" and res.total_s is None:
            res.total_s = round(t - t0, 3)
            if res.ttfb_s is None:
                res.ttfb_s = res.total_s
            if t_conn is not None and t > t_conn:
                res.throughput_mib_s = round(res.size / (t - t_conn) / 2**20, 3)
        elif kind == "error" and res.error is None:
            res.error = str(ev.get("message", ev.get("error", "error")))[:200]


def run_scenario(
    product: list[str],
    sharer: str,
    receiver: str,
    logdir: Path,
    *,
    size: int = 1 << 20,
    timeout: float = 30.0,
    use_relay: bool = False,
    prefix: str | None = None,
) -> CellResult:
    """Share a random file on ``shr``, fetch it on ``rcv``; always torn down."""
    res = CellResult(sharer, receiver, size, relay=use_relay)
    logdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="natlab-"))
    wall = time.monotonic()
    procs: list[Proc] = []
    try:
        with Lab(plan(scenario_spec(sharer, receiver)), prefix) as lab:
            (logdir / "topology.json").write_text(
                json.dumps(dict(lab.plan.describe(), prefix=lab.prefix), indent=1) + "\n"
            )

            def env(host: str) -> dict[str, str]:
                home = tmp / f"home-{host}"
                home.mkdir(exist_ok=True)
                # A closed lab: never join the public DHT from inside it.
                return dict(os.environ, P2PSHARE_HOME=str(home), P2PSHARE_NO_DEFAULT_BOOTSTRAP="1")

            extra: list[str] = []
            if use_relay:
                relay = Proc(
                    lab, "relay", "relay", [*product, "relay", "--json", "--listen", LISTEN], env("relay"), logdir
                )
                procs.append(relay)
                extra = ["--relay", _relay_addr(_first_json(relay, "relay"), lab.plan.hosts["relay"].ip)]
            src, digest = _make_file(tmp / "src", size, seed=size)
            share = Proc(
                lab,
                "shr",
                "share",
                [*product, "share", str(src), "--json", "--listen", LISTEN, *extra],
                env("shr"),
                logdir,
            )
            procs.append(share)
            shared = _first_json(share, "share")
            code = shared.get("code")
            if shared.get("event") != "shared" or not isinstance(code, str):
                raise LabError(f"share's first line is not a 'shared' event: {shared}")
            out = tmp / "out"
            out.mkdir()
            get = Proc(
                lab,
                "rcv",
                "get",
                [*product, "get", code, "-o", str(out), "--json", "--timeout", str(timeout)],
                env("rcv"),
                logdir,
            )
            procs.append(get)
            res.exit_code = get.wait(time.monotonic() + timeout + 15)
            if res.exit_code is None:
                res.error = res.error or "getter did not exit in time"
            res.sharer_exit = share.proc.poll()
            for p in procs:
                code_ = p.close(lab)
                if p is get and res.exit_code is None:
                    res.exit_code = code_
            _measure(res, get)
            found = [p for p in sorted(out.rglob(src.name))[:10] if p.is_file()]
            res.verified = bool(found) and _digest(found[0]) == digest
    except LabError as e:
        res.error = str(e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        res.wall_s = round(time.monotonic() - wall, 3)
    return res
