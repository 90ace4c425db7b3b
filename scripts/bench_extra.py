"""Side-by-side and share-time figures for ``scripts/bench_transfer`` (issue 12).

- magic-wormhole, the tool people would pick instead, on the same file in
  the same run: installed from PyPI into its own venv (``bench-out/
  wormhole-venv``, created here), with its mailbox server and transit relay
  on loopback, one ``wormhole send`` per run (it serves one receiver);
- ``share``'s time to code for a large sparse file, first share and
  re-share (the hash cache), and for many small files, with the files/s
  ``get`` reaches after connecting.

CPU seconds come from the kernel (``wait4`` of the child, ``/proc`` of a
process still running), never from the script's own clock.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WORMHOLE_PACKAGES = ("magic-wormhole", "magic-wormhole-mailbox-server", "magic-wormhole-transit-relay")
MB = 1e6


#: Our source trees (the list scripts/_venv.sh byte-compiles).
PACKAGES = ("p2pshare", "node", "transfer", "sharecode", "relay")


def compile_ours(python: str, root: Path) -> None:
    """Byte-compile our packages before measuring, as an installed wheel (and
    magic-wormhole's venv) has them: with PYTHONDONTWRITEBYTECODE set, every
    process recompiled each module changed since the last scripts/_venv.sh
    run, ~0.03-0.1 s of CPU charged to each side's start-up."""
    for command in (
        ["-m", "compileall", "-q", *(str(root / d) for d in PACKAGES)],
        ["-m", "p2pshare._dataclass_code", "--if-stale"],  # likewise (p2pshare/_dataclass_code.py)
    ):
        subprocess.run([python, *command], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def ensure_wormhole_venv(venv: Path) -> Path:
    """The venv's bin directory, created and filled from PyPI on first use."""
    bin_dir = venv / "bin"
    if not (bin_dir / "wormhole").exists() or not (bin_dir / "twist").exists():
        print(f"bench: installing {', '.join(WORMHOLE_PACKAGES)} into {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(bin_dir / "pip"), "install", "-q", "--disable-pip-version-check", *WORMHOLE_PACKAGES], check=True
        )
    return bin_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"bench: nothing listens on 127.0.0.1:{port}")


class Wormhole:
    """magic-wormhole with its own mailbox server and transit relay on loopback."""

    def __init__(self, bin_dir: Path, work: Path) -> None:
        self.bin = bin_dir
        self.work = work
        self.mailbox = _free_port()
        self.transit = _free_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.version = subprocess.run(
            [str(bin_dir / "wormhole"), "--version"], capture_output=True, text=True
        ).stdout.strip()

    def __enter__(self) -> Wormhole:
        self.work.mkdir(parents=True, exist_ok=True)
        twist = str(self.bin / "twist")
        for args in (
            ["wormhole-mailbox", f"--port=tcp:{self.mailbox}:interface=127.0.0.1", "--channel-db=relay.sqlite"],
            ["transitrelay", f"--port=tcp:{self.transit}:interface=127.0.0.1"],
        ):
            self.procs.append(
                subprocess.Popen([twist, *args], cwd=self.work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        _wait_port(self.mailbox)
        _wait_port(self.transit)
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.work, ignore_errors=True)  # its mailbox database; every run left one in /tmp

    def _cli(self) -> list[str]:
        return [
            str(self.bin / "wormhole"),
            "--relay-url",
            f"ws://127.0.0.1:{self.mailbox}/v1",
            "--transit-helper",
            f"tcp:127.0.0.1:{self.transit}",
        ]

    def transfer(self, src: Path, digest: str, out: Path, run: int) -> dict[str, float]:
        """One send → receive; the sender is waiting before the receiver starts."""
        size = src.stat().st_size
        code = f"{run + 100}-bench-wormhole"
        sender = subprocess.Popen(
            [*self._cli(), "send", "--hide-progress", "--code", code, str(src)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.work,
        )
        try:
            _wait_for_output(sender, b"wormhole receive", 60)  # printed once the code is claimed
            cpu0 = cpu_seconds(sender.pid)
            out.mkdir(parents=True, exist_ok=True)
            target = out / src.name
            t0 = time.perf_counter()
            receiver = subprocess.Popen(
                [*self._cli(), "receive", "--accept-file", "--hide-progress", "-o", str(target), code],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                cwd=self.work,
            )
            _, status, usage = os.wait4(receiver.pid, 0)
            wall = time.perf_counter() - t0
            if os.waitstatus_to_exitcode(status) != 0:
                err = receiver.stderr.read().decode(errors="replace") if receiver.stderr else ""
                raise SystemExit(f"bench: wormhole receive failed: {err.strip()[-500:]}")
            _, _, s_usage = os.wait4(sender.pid, 0)
            sender.returncode = 0
        finally:
            if sender.returncode is None:
                sender.kill()
                sender.wait()
        if file_sha256(target) != digest:
            raise SystemExit("bench: the file magic-wormhole delivered differs from the source")
        target.unlink()
        return {
            "e2e_mbps": size / wall / MB,
            "cpu_s_per_gib_get": (usage.ru_utime + usage.ru_stime) * (1 << 30) / size,
            "cpu_s_per_gib_share": (s_usage.ru_utime + s_usage.ru_stime - cpu0) * (1 << 30) / size,
            "peak_rss_mb_get": usage.ru_maxrss / 1024,
        }


def _wait_for_output(proc: subprocess.Popen[bytes], needle: bytes, timeout: float) -> None:
    assert proc.stdout is not None
    seen = b""
    end = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while needle not in seen:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise SystemExit(f"bench: no {needle!r} from {proc.args!r} in time: {seen[-300:]!r}")
        data = os.read(fd, 4096)
        if not data:
            raise SystemExit(f"bench: {proc.args!r} ended: {seen[-300:]!r}")
        seen += data


# -- share: time to code ------------------------------------------------------


@contextmanager
def _share(cli: list[str], paths: list[Path], home: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [*cli, "share", *map(str, paths), "--json", "--listen", "/ip4/127.0.0.1/tcp/0", "--new-code"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _until(proc: subprocess.Popen[str], event: str, timeout: float) -> dict[str, object]:
    assert proc.stdout is not None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not select.select([proc.stdout], [], [], max(0.0, end - time.monotonic()))[0]:
            break
        line = proc.stdout.readline()
        if not line:
            break
        msg = json.loads(line)
        if msg.get("event") == event:
            return dict(msg)
    raise SystemExit(f"bench: share printed no {event!r} event in time")


def share_timing(
    cli: list[str], paths: list[Path], home: Path, env: dict[str, str], wait_ready: bool = True
) -> dict[str, object]:
    """Seconds from starting ``share`` to its code, and to hashing done (``ready``)."""
    t0 = time.perf_counter()
    with _share(cli, paths, home, env) as proc:
        shared = _until(proc, "shared", 120)
        to_code = time.perf_counter() - t0
        out: dict[str, object] = {"to_code_s": to_code, "code": shared["code"]}
        if wait_ready:
            ready = _until(proc, "ready", 3600)
            out["to_ready_s"] = time.perf_counter() - t0
            out["cached_files"] = ready["cached_files"]
    return out


def sparse_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
    old = time.time() - 60  # older than the cache's racy window: a re-share may use the cache
    os.utime(path, (old, old))


def small_files(top: Path, count: int, seed: int = 12) -> int:
    """``count`` files of 0.2-4 KiB in 100 per directory; returns their total size."""
    rng = random.Random(seed)
    total = 0
    for i in range(count):
        d = top / f"d{i // 100:04d}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        size = rng.randint(205, 4096)
        (d / f"f{i:06d}.txt").write_bytes(os.urandom(size))
        total += size
    return total


def bare_create_rate(top: Path, sizes_from: Path) -> tuple[float, float]:
    """Files/s and CPU seconds for the machine alone to create a copy of the
    small-file tree ``sizes_from`` under ``top`` (one process, one thread:
    open, write, close per file, in the same directories as ``get`` makes),
    with no network, crypto or Python protocol around it: the floor that
    ``get``'s files/s is compared with in the same run. On this VM (ext4
    without a journal) creating an inode costs most of it, and much more
    for minutes after many files were deleted (``recently_deleted``)."""
    import resource

    files = sorted(p for p in sizes_from.rglob("*") if p.is_file())
    payload = os.urandom(4096)
    sizes = [f.stat().st_size for f in files]
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    made: set[Path] = set()
    for f, size in zip(files, sizes, strict=True):
        dest = top / f.relative_to(sizes_from)
        if dest.parent not in made:
            dest.parent.mkdir(parents=True, exist_ok=True)
            made.add(dest.parent)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, payload[:size] if size <= len(payload) else os.urandom(size))
        finally:
            os.close(fd)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return len(files) / seconds, cpu


#: Seconds to wait before each receiving run, ours and magic-wormhole's alike.
#: This machine is a VM that hands freed memory back to its host after ~1-2 s
#: (free page reporting); touching such memory again is slow. The page cache
#: of a file written in large pieces takes large folios, which come from
#: exactly that memory (~2 s of kernel CPU per GiB); small writes take pages
#: freed moments ago (see ``transfer/_fsutil.WRITE_PIECE``). Each receiver
#: starts after the same pause, so neither tool gets the other's memory.
SETTLE_S = 3.0


def settle() -> None:
    time.sleep(SETTLE_S)


def page_tax(mib: int = 1024) -> tuple[float, float]:
    """CPU seconds (user + sys) to write ``mib`` MiB to a new file in 1 MiB
    pieces and in 16 KiB pieces, each after ``settle()``."""
    import resource
    import tempfile as _tempfile

    block = os.urandom(1 << 20)

    def write_new(piece: int) -> float:
        before = resource.getrusage(resource.RUSAGE_SELF)
        fd, name = _tempfile.mkstemp(prefix="p2pshare-bench-tax-")
        try:
            view = memoryview(block)
            for i in range((mib << 20) // piece):
                os.pwrite(fd, view[:piece], i * piece)
        finally:
            os.close(fd)
            os.unlink(name)
        after = resource.getrusage(resource.RUSAGE_SELF)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    settle()
    large = write_new(1 << 20)
    settle()
    small = write_new(16 << 10)
    return large, small
