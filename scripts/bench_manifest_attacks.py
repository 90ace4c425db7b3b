"""Cost of hostile manifests to the receiver (issue 9, finding 3).

    .venv/bin/python scripts/bench_manifest_attacks.py [--process] [ATTACK ...]

Attacks are those of ``tests/hostile/manifest_attacks.py`` (all by default).

Without ``--process``: builds each sealed attack manifest into a file, then
decodes it in a fresh process that first reads the file (so the attacker's
own construction is not counted) and reports the decoder's verdict, its CPU
time and the process's peak RSS. This isolates ``manifest.decode``.

With ``--process``: the whole receiving program. A hostile sharer
(``python -m tests.hostile.sharer ATTACK``: real handshake and key proof,
the attack's manifest sealed with the share key) serves each attack on
loopback, and the real ``p2pshare get CODE -o DIR --timeout 30`` runs
against it; the table shows that process's peak RSS (its own VmHWM), its
CPU (``wait4``), its exit code and last line, and whether anything appeared
in DIR besides ``.p2pshare-partial`` or next to DIR. The first row
is a real ``p2pshare share`` of one small file, for the baseline.

The claim to hold (issue 9): every attack stays under 200 MB RSS and 5 s
CPU in the ``get`` process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cli.helpers import env_for, run_measured  # noqa: E402
from tests.harness import PeerProcess  # noqa: E402
from tests.hostile.manifest_attacks import ATTACKS  # noqa: E402

RSS_LIMIT = 200e6
CPU_LIMIT = 5.0

CHILD = """
import sys, time
from p2pshare.transfer import manifest
def hwm():  # VmHWM, not ru_maxrss: that also holds the parent's peak (vfork + exec)
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
data = open(sys.argv[1], "rb").read()
before = hwm()
t0 = time.process_time()
try:
    manifest.decode(data)
    verdict = "accepted"
except manifest.ManifestError as exc:
    verdict = f"refused: {exc}"
cpu = time.process_time() - t0
peak = hwm()
print(f"{len(data) / 1e6:.1f} MB | {verdict} | {cpu:.2f} s CPU | peak RSS {peak / 1024:.0f} MB "
      f"(after reading the file: {before / 1024:.0f} MB)")
"""


def decoder_only(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            attack = ATTACKS[name]
            if attack.frame != "sealed":
                continue
            path = Path(tmp) / "m.json"
            path.write_bytes(attack.build())
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, cwd=ROOT, check=True
            )
            print(f"{name:15} {out.stdout.strip()}")
            path.unlink()


def _leftovers(world: Path, out_dir: Path) -> str:
    """What the get left where it must not: in DIR besides the partial dir, or next to DIR."""
    found = [p.name for p in out_dir.iterdir() if p.name != ".p2pshare-partial"] if out_dir.exists() else []
    found += [p.name for p in world.iterdir() if p.name not in ("out", "rx", "tx", "logs", "src", "cwd")]
    return ",".join(sorted(found))[:30] or "nothing"


def _sharer(name: str, world: Path) -> tuple[PeerProcess, str]:
    env = env_for(world / "tx")
    if name == "baseline":
        src = world / "src"
        src.mkdir()
        (src / "f").write_bytes(os.urandom(1 << 20))
        argv = [sys.executable, "-m", "p2pshare", "share", str(src / "f"), "--listen", "/ip4/127.0.0.1/tcp/0"]
        proc = PeerProcess([*argv, "--json"], name="share", env=env, cwd=ROOT, log_dir=world / "logs")
        return proc, str(next(proc.events(timeout=60))["code"])
    proc = PeerProcess(
        [sys.executable, "-m", "tests.hostile.sharer", name], name=name, env=env, cwd=ROOT, log_dir=world / "logs"
    )
    line = proc.readline(timeout=300)
    assert line, proc.stderr_tail()
    return proc, line.strip()


def process(names: list[str]) -> None:
    print(f"{'attack':15} {'what':44} {'peak RSS':>9} {'CPU':>7} {'wall':>6} exit  written  message")
    for name in ["baseline", *names]:
        with tempfile.TemporaryDirectory() as tmp:
            world = Path(tmp)
            (world / "cwd").mkdir()
            sharer, code = _sharer(name, world)
            try:
                res = run_measured(
                    ["get", code, "-o", str(world / "out"), "--timeout", "30", "--yes"],
                    world / "rx",
                    timeout=90,
                    cwd=world / "cwd",
                )
            finally:
                sharer.stop(grace=0)
            lines = (res.stderr if res.returncode else res.stdout).strip().splitlines()
            message = lines[-1] if lines else ""
            flag = " !" if res.peak_rss > RSS_LIMIT or res.cpu_seconds > CPU_LIMIT else "  "
            what = ATTACKS[name].what if name in ATTACKS else "real share of one 1 MiB file"
            print(
                f"{name:15} {what:44} {res.peak_rss / 1e6:6.0f} MB {res.cpu_seconds:5.2f} s {res.wall_seconds:4.1f} s"
                f" {res.returncode:3}{flag} {_leftovers(world, world / 'out'):8} {message[:110]}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--process", action="store_true", help="measure the whole p2pshare get process")
    parser.add_argument("attacks", nargs="*", help=f"default: all of {', '.join(ATTACKS)}")
    args = parser.parse_args()
    unknown = set(args.attacks) - set(ATTACKS)
    if unknown:
        parser.error(f"unknown attacks: {', '.join(sorted(unknown))}")
    os.environ["P2PSHARE_NO_DEFAULT_BOOTSTRAP"] = "1"
    names = args.attacks or list(ATTACKS)
    (process if args.process else decoder_only)(names)


if __name__ == "__main__":
    main()
