"""``natlab relay-kill``: the relay carrying a transfer dies mid-way.

Sharer and receiver both sit behind symmetric NATs, so no direct path
exists and no hole punch can succeed (DCUtR has no address to announce;
birthday probing, which punches a symmetric NAT facing a cone one, needs one
side's mapping to be endpoint-independent): the transfer must go through a
relay. The sharer reserves on two relays on
the "internet", ``ra`` and ``rb``, both egress-capped with TBF so a transfer
of a few MiB lasts seconds. When the getter's ``progress`` shows
0 < bytes < total, the relay carrying the circuit (the one that has sent the
receiver the most bytes, read from ``ss``) is SIGKILLed. The getter must
re-dial through the other relay, fetch only what is missing
(``done.bytes`` < total) and verify the file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .fleet import Fleet, Outcome, code_addresses, relay_ips, run_variants, wait_event
from .topology import HostSpec, SiteSpec, TopologySpec

KILL_AT = 0.2  # kill once this fraction of the file is verified


def spec() -> TopologySpec:
    return TopologySpec(
        (SiteSpec("sa", "symmetric"), SiteSpec("sb", "symmetric")),
        (HostSpec("ra"), HostSpec("rb"), HostSpec("shr", "sa"), HostSpec("rcv", "sb")),
    )


def _mid_transfer(total_seen: list[int]) -> Callable[[dict[str, object]], bool]:
    def pred(ev: dict[str, object]) -> bool:
        if ev.get("event") in ("done", "error"):
            return True
        b, tot = ev.get("bytes"), ev.get("total")
        if ev.get("event") != "progress" or not isinstance(b, int) or not isinstance(tot, int):
            return False
        total_seen[:] = [tot]
        return 0 < b < tot and b >= KILL_AT * tot

    return pred


def run_kill(
    product: list[str],
    out: Path,
    *,
    size: int,
    timeout: float,
    rate: str,
    prefix: str | None,
    concrete: bool,
    res: Outcome,
) -> None:
    with Fleet(product, spec(), out / "relay-kill", prefix, concrete) as fleet:
        relays = {"ra": fleet.relay("ra")}
        relays["rb"] = fleet.relay("rb", bootstrap=[relays["ra"][1]])
        for host in relays:
            fleet.throttle(host, rate)
        src, digest = fleet.make_file("big", size, seed=3)
        addrs = [a for _, a in relays.values()]
        _, shared = fleet.share("shr", "share", fleet.home("sharer"), [src], relays=addrs, bootstrap=[addrs[0]])
        code = str(shared["code"])
        res.metrics["code_relays"] = relay_ips(code_addresses(code))
        dl = fleet.tmp / "out"
        get = fleet.get("rcv", "get", code, dl, timeout=timeout, bootstrap=[addrs[0]])
        deadline = time.monotonic() + timeout + 30
        total: list[int] = []
        ev = wait_event(get, _mid_transfer(total), deadline)
        if ev is None or ev.get("event") != "progress":
            res.reasons.append(f"no progress 0 < bytes < total to kill the relay at: {ev}")
            fleet.finish_get(get, dl, src.name, digest, time.monotonic() + 5)
            return
        rcv_ip = fleet.public_ip("rcv")
        sent = {h: fleet.bytes_sent_to(h, rcv_ip) for h in relays}
        victim = max(sent, key=lambda h: sent[h])
        survivor = next(h for h in relays if h != victim)
        killed_at = time.monotonic()
        fleet.kill(relays[victim][0])
        at_kill = ev.get("bytes")
        res.metrics.update(
            bytes_at_kill=at_kill,
            total=total[0] if total else None,
            relay_bytes_to_receiver=sent,
            killed=victim,
            killed_at_s=round(killed_at - get.started, 3),
        )
        # Sockets vanish from ss when the getter exits: sample while it runs.
        survivor_before = fleet.bytes_sent_to(survivor, rcv_ip)
        survivor_max = survivor_before
        for _ in range(int(timeout * 4) + 120):
            if get.wait(time.monotonic() + 0.25) is not None or time.monotonic() > deadline:
                break
            survivor_max = max(survivor_max, fleet.bytes_sent_to(survivor, rcv_ip))
        rep = fleet.finish_get(get, dl, src.name, digest, deadline)
        res.metrics.update(rep.as_metrics())
        res.metrics["survivor_bytes_after_kill"] = survivor_max - survivor_before
        after = [c for c in rep.connects if c[0] >= killed_at - get.started]
        res.metrics["resume_connect_s"] = round(after[0][0] - (killed_at - get.started), 3) if after else None
        res.check(sent[victim] > 0, "no relay had sent the receiver anything: not relayed?")
        res.check(
            rep.connects[:1] != [] and rep.connects[0][1] == "relayed",
            f"first connection not relayed: {rep.connects[:1]}",
        )
        res.check(bool(after), "no new 'connected' event after the relay was killed")
        res.check(rep.exit_code == 0, f"getter exit code {rep.exit_code}: {rep.error}")
        res.check(rep.verified, "file missing or not byte-identical")
        done_bytes = (rep.done or {}).get("bytes")
        if res.check(isinstance(done_bytes, int), "no 'done' event with bytes"):
            assert isinstance(done_bytes, int)
            res.check(
                done_bytes < size,
                f"done.bytes {done_bytes} >= total {size}: the transfer restarted instead of resuming",
            )
            if isinstance(at_kill, int):
                res.check(
                    done_bytes <= size - at_kill,
                    f"done.bytes {done_bytes} > total - verified at kill "
                    f"({size - at_kill}): verified chunks were fetched again",
                )
        res.check(
            res.metrics["survivor_bytes_after_kill"] > 0,  # type: ignore[operator]
            f"the surviving relay {survivor} carried nothing after the kill",
        )


def run_relay_kill(
    product: list[str], out: Path, *, size: int, timeout: float, rate: str, prefix: str | None, concrete: bool = False
) -> list[Outcome]:
    return run_variants(
        [
            (
                "two-relays",
                lambda r: run_kill(
                    product, out, size=size, timeout=timeout, rate=rate, prefix=prefix, concrete=concrete, res=r
                ),
            )
        ],
        "relay-kill",
    )
