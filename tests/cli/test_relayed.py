"""share and get through a real `p2pshare relay` process (all on loopback)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from tests.cli.helpers import Proc, run, start, tree_digest, write_random


def start_relay(tmp_path: Path, procs: list[Proc], *extra: str) -> str:
    relay = start(["relay", "--json", "--listen", "/ip4/127.0.0.1/tcp/0", *extra], tmp_path / "relay-home")
    procs.append(relay)
    first = next(relay.events(timeout=60))
    assert first["peer_id"] and all(f"/p2p/{first['peer_id']}" in a for a in first["addrs"])
    return str(first["addrs"][0])


def test_get_through_relay_when_forced(tmp_path: Path, procs: list[Proc], sharer) -> None:  # type: ignore[no-untyped-def]
    relay_addr = start_relay(tmp_path, procs)
    relay = procs[-1]
    src = tmp_path / "src"
    write_random(src / "data.bin", 6 << 20)
    _, shared = sharer(src, extra=("--relay", relay_addr))
    circuits = [a for a in shared["addresses"] if "/p2p-circuit/" in a]
    assert circuits, "a sharer with a relay reservation must put its circuit address in the code"
    res = run(["get", shared["code"], "-o", str(tmp_path / "out"), "--force-relay", "--json"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert events[0]["event"] == "connected" and events[0]["path"] == "relayed"
    assert tree_digest(tmp_path / "out" / "src") == tree_digest(src)
    # A transfer that ended as transfers do is no warning for the operator
    # (each one printed "warning: relay: circuit … ended (… reset)").
    time.sleep(0.5)
    assert "warning: relay:" not in relay.stderr_tail(), relay.stderr_tail()
    # Its stop says what it did over its run (it said only "Relay stopped.").
    relay.kill(signal.SIGINT)
    assert relay.wait(timeout=30) == 0
    stopped = json.loads(relay.lines[-1])
    assert stopped["event"] == "stopped" and stopped["circuits"] >= 1 and stopped["bytes"] >= 6 << 20, stopped


def test_relay_data_limit_is_reported_not_silent(tmp_path: Path, procs: list[Proc], sharer) -> None:  # type: ignore[no-untyped-def]
    """A relay that caps circuits (as public go/js relays do, 128 KiB) cannot
    carry the file and the sharer has no other: `get` must fail with a clear
    one-line message, never hang or lie."""
    relay_addr = start_relay(tmp_path, procs, "--circuit-data", "128KiB")
    src = tmp_path / "src"
    write_random(src / "data.bin", 4 << 20)
    _, shared = sharer(src, extra=("--relay", relay_addr))
    res = run(["get", shared["code"], "-o", str(tmp_path / "out"), "--force-relay", "--timeout", "8"], tmp_path / "rx")
    assert res.returncode == 3, res.stderr
    assert "Traceback" not in res.stderr
    said = [ln for ln in res.stderr.splitlines() if "no relay that carries data reaches the sharer" in ln]
    assert len(said) == 1 and "cap each connection at 128 KiB" in said[0], res.stderr
    assert not (tmp_path / "out" / "src" / "data.bin").exists()


def test_two_shares_from_one_data_directory_are_two_peers(tmp_path: Path, procs: list[Proc], sharer) -> None:  # type: ignore[no-untyped-def]
    """Two ``share``s at once from one data directory used to be one peer
    ID in two processes: the relay reached only one of them, and every
    relayed ``get`` of the other's code failed "the sharer does not serve
    this share". The second now runs as another identity of the data
    directory (``identity-2.key``), and runs as it again when restarted
    while the first still runs: its code and peer stay the same."""
    relay_addr = start_relay(tmp_path, procs)
    home = tmp_path / "sharer-home"
    a, b = tmp_path / "a" / "docs", tmp_path / "b" / "photos"
    write_random(a / "one.bin", 300_000)
    write_random(b / "two.bin", 300_000)
    _, first = sharer(a, home=home, extra=("--relay", relay_addr))
    second_proc, second = sharer(b, home=home, extra=("--relay", relay_addr))
    for shared, src, out in ((first, a, "out-a"), (second, b, "out-b"), (second, b, "out-b2")):
        res = run(["get", shared["code"], "-o", str(tmp_path / out), "--force-relay", "--json"], tmp_path / "rx")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout.splitlines()[0])["path"] == "relayed"
        assert tree_digest(tmp_path / out / src.name) == tree_digest(src)
    assert first["peer_id"] != second["peer_id"]
    assert (home / "identity.key").is_file() and (home / "identity-2.key").is_file()
    second_proc.close()
    _, again = sharer(b, home=home, extra=("--relay", relay_addr))
    assert again["peer_id"] == second["peer_id"] and again["share_code"] == second["share_code"]
    assert again["reused"] is True


#: A peer ID no process here has.
_NOBODY = "12D3KooWLPwVgqFasfWzQFeyYJBegtLzy3DZwUcDdHRxwSvdrdfQ"


def _share_with_relay(tmp_path: Path, sharer, relay: str) -> tuple[Proc, dict[str, Any], float]:  # type: ignore[no-untyped-def]
    """Start ``share --relay RELAY``; the process, its code and the seconds
    the code took. A relay that gives no reservation is not in the code."""
    src = tmp_path / "src"
    write_random(src / "data.bin", 1000)
    start = time.monotonic()
    proc, shared = sharer(src, extra=("--relay", relay))
    waited = time.monotonic() - start
    assert not [a for a in shared["addresses"] if "/p2p-circuit/" in a]
    return proc, shared, waited


def test_a_relay_that_refuses_does_not_hold_up_the_code(tmp_path: Path, procs: list[Proc], sharer) -> None:  # type: ignore[no-untyped-def]
    """``share --relay`` waits (up to 10 s) for a reservation so that its
    code names the relay; a relay that refuses every connection (wrong
    address, relay down) is given up on after its second failure: the code
    comes at once, with direct addresses, and the warning says so. (It
    waited the full 10 s.)"""

    from tests.cli.helpers import free_port

    dead = f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{_NOBODY}"
    proc, shared, waited = _share_with_relay(tmp_path, sharer, dead)
    assert waited < 7.0, f"the code took {waited:.1f} s"  # the deadline it must not wait out: 10 s
    res = run(["get", shared["code"], "-o", str(tmp_path / "out")], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    said = proc.stderr_tail()
    assert "no relay reservation yet" in said
    # One plain line when the relay starts failing, not one per retry (it
    # failed at least twice before the code) nor a chain of library errors.
    warned = [ln for ln in said.splitlines() if "unusable" in ln]
    assert warned == [
        f"p2pshare: warning: relay {dead.rsplit('/', 1)[1]} unusable: connection refused at "
        f"{dead.split('/p2p/')[0]}; retrying (next in 1s)"
    ], said


def test_a_relay_that_never_answers_holds_up_the_code_only_briefly(
    tmp_path: Path,
    procs: list[Proc],
    sharer,  # type: ignore[no-untyped-def]
) -> None:
    """A relay host that is gone drops packets instead of refusing them, so
    its dial takes the whole 10 s wait, and ``share`` printed its code after
    10.4 s. A configured relay that has not even connected after
    ``SILENT_GRACE`` (4 s) is no longer waited for; it is still retried."""
    import socket

    from p2pshare.node.circuit.schedule import SILENT_GRACE

    with socket.socket() as mute:  # accepts TCP, never speaks: as silent as a dropped SYN, and local
        mute.bind(("127.0.0.1", 0))
        mute.listen(64)
        silent = f"/ip4/127.0.0.1/tcp/{mute.getsockname()[1]}/p2p/{_NOBODY}"
        proc, shared, waited = _share_with_relay(tmp_path, sharer, silent)
    assert SILENT_GRACE - 0.5 < waited < SILENT_GRACE + 3.0, f"the code took {waited:.1f} s"
    assert "no relay reservation yet" in proc.stderr_tail()


def test_the_relay_says_what_to_give_clients_and_that_loopback_is_not_public(tmp_path: Path) -> None:
    """A usability review: nothing said which address to hand out, nor that
    a relay on a private address serves only its own network; and the
    relay's first line, pasted whole into --relay, read "not a multiaddr"."""
    relay = start(["relay", "--listen", "/ip4/127.0.0.1/tcp/0", "--circuit-duration", "120"], tmp_path / "relay-home")
    try:
        first = relay.line(timeout=60)
        deadline = time.monotonic() + 30
        while "Clients use it with" not in relay.stderr_tail() and time.monotonic() < deadline:
            time.sleep(0.1)
        said = relay.stderr_tail()
    finally:
        relay.kill(signal.SIGINT)
        relay.wait(timeout=30)
    peer, addr = first.split()[:2]
    assert f"Clients use it with: --relay {addr}" in said, said
    assert "warning: no address of this relay is public" in said, said
    # Its limits, which an operator otherwise learned only from --help.
    assert "Limits: 128 reservations (4 per peer, 8 per address, 1 h each), 64 circuits" in said, said
    assert "a circuit ends after 2 min or 30 min idle" in said, said
    res = run(["share", str(tmp_path), "--relay", first.strip()], tmp_path / "sharer")
    assert res.returncode == 2
    assert f"give one address, not the whole line the node printed (e.g. {addr})" in res.stderr, res.stderr
    assert peer in addr


def test_a_receiver_reserves_no_slot_on_its_relays(tmp_path: Path, procs: list[Proc], sharer) -> None:  # type: ignore[no-untyped-def]
    """``get --relay R`` took a reservation on R, one of the operator's
    slots, for nothing (a receiver only dials through relays), and said
    "relay … unusable" when R restarted (a usability review)."""
    relay_addr = start_relay(tmp_path, procs, "--stats-every", "1")
    relay = procs[-1]
    src = tmp_path / "src"
    write_random(src / "data.bin", 1 << 20)
    _, shared = sharer(src)  # direct addresses only: the relay is the receiver's alone
    res = run(["get", shared["code"], "-o", str(tmp_path / "out"), "--relay", relay_addr, "-v"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert "reservation" not in res.stderr, res.stderr
    time.sleep(2.5)  # two whole periods after the get
    stats = [e for e in relay.events_until("no such event", 1.0) if e["event"] == "relay_stats"]
    assert len(stats) >= 3, stats
    assert sum(e["reservations"] for e in stats) == 0, stats  # every period since the relay started


def test_a_relay_announcing_ws_and_quic_addresses_still_gives_a_code(tmp_path: Path, sharer) -> None:  # type: ignore[no-untyped-def]
    """A reservation naming a ``/ws`` (or QUIC, WebTransport, WebRTC)
    address made ``share`` end with "bad share code", no code printed; go
    and js relays announce such addresses (a hostile-peer review, stop 43).
    Only the relay's TCP address goes into the code."""
    from tests.harness import python_module
    from tests.hostile.many_kinds_relay import TCP

    (tmp_path / "f.txt").write_text("x")
    relay = python_module("tests.hostile.many_kinds_relay", name="many-kinds-relay", log_dir=tmp_path / "logs")
    try:
        relay_addr = relay.line(timeout=60).strip()
        relay_id = relay_addr.rsplit("/", 1)[1]
        _, shared = sharer(tmp_path / "f.txt", extra=("--relay", relay_addr, "--no-mdns"))
    finally:
        relay.stop(grace=0.2)  # it never reads stdin: terminated
    code = json.loads(run(["code", "show", shared["code"]], tmp_path / "x").stdout)
    circuits = [a for a in code["addresses"] if "/p2p-circuit" in a]
    assert circuits == [f"{TCP}/p2p/{relay_id}/p2p-circuit/p2p/{shared['peer_id']}"], code["addresses"]
