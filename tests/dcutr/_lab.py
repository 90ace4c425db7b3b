"""Drive DCUtR/AutoNAT/natinfo peers inside the NAT lab (``scripts/natlab_lib``).

    python -m tests.dcutr._lab SHARER RECEIVER [--runs N] [--rounds R] [--seed S]

One fresh topology per run (``topology.scenario_spec``: public host
``relay``, sharer ``shr`` behind SHARER, receiver ``rcv`` behind RECEIVER).
``relay`` runs the project's relay server plus our AutoNAT server and
STUN-over-TCP responder; ``shr`` reserves a slot (DCUtR initiator) and
``rcv`` dials it through the relay (DCUtR responder), then proves that a new
stream runs on the direct connection. Prints one JSON result per run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from natlab_lib import netns, topology  # noqa: E402

PY = str(ROOT / ".venv" / "bin" / "python")
PORT = 4001


class Reader:
    """Collect a process's JSON stdout lines in a thread."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self._cv = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        stream: IO[bytes] | None = self.proc.stdout
        assert stream is not None
        for _ in range(10000):
            line = stream.readline()
            if not line:
                break
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self._cv:
                self.events.append(ev)
                self._cv.notify_all()

    def wait(self, name: str, timeout: float) -> dict[str, Any] | None:
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                for ev in self.events:
                    if ev.get("event") == name:
                        return ev
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(min(left, 0.2))

    def find(self, *names: str) -> list[dict[str, Any]]:
        with self._cv:
            return [e for e in self.events if e.get("event") in names]


def _spawn(lab: netns.Lab, role: str, args: list[str], logdir: Path | None) -> Reader:
    err: Any = subprocess.DEVNULL
    if logdir is not None:
        err = open(logdir / f"{role}.err", "wb")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = lab.spawn(role, [PY, *args], env=env, stdout=subprocess.PIPE, stderr=err, cwd=str(ROOT))
    return Reader(proc)


def run_pair(
    sharer: str,
    receiver: str,
    *,
    rounds: int = 4,
    seed: int | None = None,
    autonat: bool = False,
    logdir: Path | None = None,
    prefix: str | None = None,
    wait: float = 40.0,
) -> dict[str, Any]:
    """One scenario in a fresh lab; returns what both peers reported."""
    plan = topology.plan(topology.scenario_spec(sharer, receiver))
    relay_ip = plan.hosts["relay"].ip
    relay_listen = f"/ip4/{relay_ip}/tcp/{PORT}"
    out: dict[str, Any] = {"sharer": sharer, "receiver": receiver}
    with netns.Lab(plan, prefix) as lab:
        relay = _spawn(
            lab,
            "relay",
            [
                "-m",
                "tests.dcutr._relay_side",
                "--listen",
                relay_listen,
                "--stun-ip",
                relay_ip,
                "--run-for",
                str(wait + 60),
            ],
            logdir,
        )
        deadline = time.monotonic() + 30
        while not relay.events and time.monotonic() < deadline:
            time.sleep(0.1)
        if not relay.events:
            out["error"] = "relay did not start"
            return out
        info = relay.events[0]
        raddr = f"{relay_listen}/p2p/{info['peer']}"
        common = [
            "-m",
            "tests.dcutr._peer_main",
            "--relay",
            raddr,
            "--listen",
            f"/ip4/0.0.0.0/tcp/{PORT}",
            "--stun",
            f"{relay_ip}:3478",
            "--stun",
            f"{relay_ip}:3479",
            "--rounds",
            str(rounds),
            "--exit-after",
            str(wait + 20),
            "--log",
            os.environ.get("DCUTR_LAB_LOG", "INFO"),
        ]
        if seed is not None:
            common += ["--seed", str(seed)]
        if autonat:
            common += ["--autonat", raddr]
        shr = _spawn(lab, "shr", common, logdir)
        if shr.wait("reserved", 30) is None:
            out["error"] = "sharer did not reserve"
            out["shr"] = shr.events
            return out
        rcv = _spawn(lab, "rcv", [*common, "--dial", shr.events[0]["peer"], "--wait-upgrade", str(wait)], logdir)
        got = rcv.wait("stream", wait + 30)
        shr.wait("upgraded", 2) or shr.wait("upgrade_failed", 2)
        out["stream"] = got
        out["rcv"] = rcv.events
        out["shr"] = shr.events
        out["relayed_at"] = next((e["t"] for e in rcv.events if e["event"] == "relayed"), None)
    return out


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    """The numbers that matter: path of the new stream, who upgraded, how fast."""
    ups = [e for side in ("shr", "rcv") for e in res.get(side, []) if e["event"] == "upgraded"]
    fails = [e for e in res.get("shr", []) if e["event"] == "upgrade_failed"]
    init = next((e for e in ups if e["role"] == "initiator"), None)
    nat = {side: next((e for e in res.get(side, []) if e["event"] == "nat"), None) for side in ("shr", "rcv")}
    stream = res.get("stream") or {}
    return {
        "pair": f"{res['sharer']}<->{res['receiver']}",
        "path": stream.get("path"),
        "echo_ok": stream.get("echo_ok"),
        "method": init["method"] if init else (ups[0]["method"] if ups else None),
        "rounds": init["rounds"] if init else None,
        "seconds": round(init["elapsed"], 3) if init else None,
        "failed": fails[0]["reason"] if fails else None,
        "nat": {k: (v["mapping"], v["preserving"]) if v else None for k, v in nat.items()},
        "error": res.get("error"),
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("sharer")
    p.add_argument("receiver")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seed", type=int)
    p.add_argument("--logdir")
    p.add_argument("--raw", action="store_true")
    a = p.parse_args()
    why = netns.preflight()
    if why:
        print(why, file=sys.stderr)
        return 2
    logdir = Path(a.logdir) if a.logdir else None
    if logdir:
        logdir.mkdir(parents=True, exist_ok=True)
    for i in range(max(1, min(a.runs, 50))):
        res = run_pair(
            a.sharer, a.receiver, rounds=a.rounds, seed=None if a.seed is None else a.seed + i, logdir=logdir
        )
        print(json.dumps(res if a.raw else summarize(res)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
