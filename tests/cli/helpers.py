"""Drive the real ``p2pshare`` CLI in separate processes on loopback."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.harness import PeerProcess

CLI = [sys.executable, "-m", "p2pshare"]
ROOT = Path(__file__).resolve().parents[2]


def env_for(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["P2PSHARE_HOME"] = str(home)
    env["PYTHONPATH"] = str(ROOT)
    return env


def hostile_sharer(module: str, mode: str, tmp_path: Path, name: str) -> tuple[PeerProcess, str]:
    """Start ``python -m tests.hostile.<module> MODE`` (a sharer that
    misbehaves on purpose); return it and the share code it prints first.
    The caller stops it; one that printed no code is stopped here."""
    proc = PeerProcess(
        [sys.executable, "-m", f"tests.hostile.{module}", mode],
        name=name,
        env=env_for(tmp_path / "sharer"),
        cwd=ROOT,
        log_dir=tmp_path / "logs",
    )
    line = proc.readline(timeout=60)
    if not line:
        tail = proc.stderr_tail()
        proc.stop(grace=0)
        raise AssertionError(f"the hostile sharer printed no code: {tail}")
    return proc, line.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc(PeerProcess):
    """A running CLI process (the shared harness): stdout read line by line
    with deadlines, ``lines`` keeps what was read, ``close`` stops and reaps."""

    def close(self) -> None:
        self.stop(grace=0)


def _loopback_only(args: list[str]) -> list[str]:
    """Test nodes listen on loopback only: left to the default (0.0.0.0) a
    receiver would advertise this machine's own interface address, and peers
    would dial it. Tests keep their traffic on loopback."""
    sub = next((a for a in args if not a.startswith("-")), "")
    if sub in ("get", "node") and "--listen" not in args:
        return [*args, "--listen", "/ip4/127.0.0.1/tcp/0"]
    return args


def start(args: list[str], home: Path) -> Proc:
    args = _loopback_only(args)
    sub = next((a for a in args if not a.startswith("-")), "cli")
    return Proc(CLI + args, name=f"p2pshare-{sub}", env=env_for(home), cwd=ROOT, log_dir=home.parent / "logs")


def loopback_relay(home: Path, *flags: str) -> tuple[Proc, str, str]:
    """A ``p2pshare [flags] relay`` on loopback: the process, its peer ID and
    its loopback TCP address (without ``/p2p/``), from its first event."""
    relay = start([*flags, "relay", "--listen", "/ip4/127.0.0.1/tcp/0", "--json"], home)
    try:
        first = next(relay.events(timeout=60))
        addr = next(a for a in first["addrs"] if a.startswith("/ip4/127.0.0.1/")).split("/p2p/")[0]
        return relay, str(first["peer_id"]), addr
    except BaseException:
        relay.close()
        raise


def run(
    args: list[str], home: Path, timeout: float = 120.0, prefix: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """``prefix``: a command to run the CLI under (``tests.harness.file_modes_bind``)."""
    args = _loopback_only(args)
    # No terminal on stdin: run from a developer's terminal, get would ask (y/N) and wait.
    return subprocess.run(
        [*prefix, *CLI, *args],
        capture_output=True,
        text=True,
        env=env_for(home),
        cwd=str(ROOT),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def own_address() -> str | None:
    """This machine's own non-loopback IPv4 address, or None (a UDP connect
    sends nothing). Traffic to it stays on this machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("198.51.100.1", 9))
        except OSError:
            return None
        ip = str(s.getsockname()[0])
    return None if ip.startswith("127.") else ip


def run_module(module: str, *args: str, home: Path, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    """``python -m module args...`` from the repository root (a hostile peer, say)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=env_for(home),
        cwd=str(ROOT),
        timeout=timeout,
    )


def start_module(module: str, *args: str, home: Path) -> subprocess.Popen[str]:
    """``python -m module args...`` from the repository root, running (a
    hostile peer that holds something while the test goes on)."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(home),
        cwd=str(ROOT),
    )


@dataclass(frozen=True)
class Measured:
    """A finished CLI process and what it cost: peak RSS (the kernel's
    high-water mark of the process's own memory, all threads) and CPU
    (user + system)."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss: int  # bytes
    cpu_seconds: float
    wall_seconds: float


def _status_bytes(pid: int, field: str) -> int | None:
    """A ``/proc/PID/status`` size (``VmHWM``, ``VmRSS``) in bytes; None once ``pid`` has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _vm_hwm(pid: int) -> int:
    """VmHWM of ``pid`` in bytes; 0 once it has exited."""
    return _status_bytes(pid, "VmHWM") or 0


def rss_bytes(pid: int) -> int:
    """VmRSS of a running ``pid`` in bytes."""
    rss = _status_bytes(pid, "VmRSS")
    assert rss is not None, f"no VmRSS for {pid}"
    return rss


def run_measured(args: list[str], home: Path, timeout: float = 120.0, cwd: Path | None = None) -> Measured:
    """``run``, with the process's own peak RSS and CPU time.

    Peak RSS is VmHWM, read every 10 ms while the process runs: it only
    grows, so the last read holds the peak unless that came in the last few
    milliseconds (the CLI spends longer than that shutting down). Not the
    ``ru_maxrss`` of ``wait4``: it also counts the parent's own peak (the
    child is spawned with vfork, whose exec folds the parent's high-water
    mark into the child's), which under pytest can be hundreds of MB. CPU
    comes from ``wait4``. Output goes through files (no pipe can fill up
    and stall the child).
    """
    args = _loopback_only(args)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            CLI + args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env_for(home), cwd=str(cwd or ROOT)
        )
        deadline = started + timeout
        peak = 0
        while True:
            peak = max(peak, _vm_hwm(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen
        out.seek(0)
        err.seek(0)
        return Measured(
            returncode=proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            peak_rss=peak,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            wall_seconds=wall,
        )


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 (files) or 'dir' (directories), skipping our partial dir."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".p2pshare-partial"]
        rel = Path(dirpath).relative_to(root)
        for d in dirnames:
            out[str(rel / d)] = "dir"
        for f in filenames:
            h = hashlib.sha256((Path(dirpath) / f).read_bytes()).hexdigest()
            out[str(rel / f)] = h
    return out


def write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n


def cached_fraction(path: Path) -> float:
    """The fraction of ``path``'s pages in the page cache (``mincore``), read
    without touching them."""
    import ctypes

    size = path.stat().st_size
    page = os.sysconf("SC_PAGE_SIZE")
    pages = -(-size // page)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            vec = (ctypes.c_ubyte * pages)()
            assert libc.mincore(addr, size, vec) == 0, os.strerror(ctypes.get_errno())
            return sum(b & 1 for b in vec) / pages
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)
