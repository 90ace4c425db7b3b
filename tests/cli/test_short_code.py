"""Short codes through the real CLI: separate processes, a local DHT
(a relay node as the bootstrap node), loopback only."""

from __future__ import annotations

import json
from pathlib import Path

from p2pshare.sharecode.short import parse_short_code, wordlist
from tests.cli.helpers import Proc, run, start, tree_digest, write_random
from tests.cli.test_relayed import start_relay


def _wrong_words(code: str) -> str:
    """The same number and two words, the last word replaced by another."""
    short = parse_short_code(code)
    other = next(w for w in wordlist() if w != short.words[-1])
    return "-".join((str(short.number), *short.words[:-1], other))


def _get(code: str, out: Path, boot: str, home: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run(["get", code, "-o", str(out), "--bootstrap", boot, "--json", "--timeout", "30", *extra], home)


def test_short_code_over_a_local_dht(tmp_path: Path, procs: list[Proc], sharer) -> None:  # type: ignore[no-untyped-def]
    boot = start_relay(tmp_path, procs)
    src = tmp_path / "src"
    write_random(src / "a.bin", 1 << 20)
    proc, shared = sharer(src, extra=("--bootstrap", boot, "--code-tries", "3", "--code-ttl", "10m"))
    assert shared["short_code_tries"] == 3 and shared["short_code_ttl"] == 600
    short = shared["short_code"]
    assert parse_short_code(short) and short not in shared["code"]
    proc.wait_for("short_code_advertised", timeout=60)
    # Spoken codes arrive in any case and with spaces.
    res = _get(short.upper().replace("-", " "), tmp_path / "out", boot, tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert tree_digest(tmp_path / "out" / "src") == tree_digest(src)
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert events[0] == {"event": "short_code_lookup", "number": parse_short_code(short).number}
    # The words are never printed back. Checked as the phrase and as any two
    # words in a row: one short word alone ("ion") can be part of the output
    # ("description"), which failed this test once (stop 46).
    said = (res.stdout + res.stderr).lower()
    words = short.lower().split("-")[1:]
    for a, b in zip(words, words[1:], strict=False):
        assert f"{a}-{b}" not in said and f"{a} {b}" not in said, (a, b)
    claimed = proc.wait_for("short_code_claimed", timeout=30)
    assert not [e for e in claimed if e["event"] == "short_code_failed"]


def test_wrong_words_fail_count_and_exhaust_the_code(tmp_path: Path, procs: list[Proc], sharer) -> None:  # type: ignore[no-untyped-def]
    boot = start_relay(tmp_path, procs)
    src = tmp_path / "src"
    write_random(src / "a.bin", 64 << 10)
    proc, shared = sharer(src, extra=("--bootstrap", boot, "--code-tries", "2"))
    short = shared["short_code"]
    proc.wait_for("short_code_advertised", timeout=60)
    for left in (1, 0):
        res = _get(_wrong_words(short), tmp_path / "out", boot, tmp_path / "rx")
        assert res.returncode == 4, res.stderr
        assert "do not match" in res.stderr and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) <= 2  # the lookup line and one error line
        failed = proc.wait_for("short_code_failed", timeout=30)[-1]
        assert failed["tries_left"] == left
    # Out of tries: even the right words are refused now, before any PAKE.
    res = _get(short, tmp_path / "out", boot, tmp_path / "rx")
    assert res.returncode == 2, res.stderr
    assert "too many wrong tries" in res.stderr and not (tmp_path / "out" / "src").exists()
    # The long code still works.
    res = run(["get", shared["code"], "-o", str(tmp_path / "out2")], tmp_path / "rx")
    assert res.returncode == 0, res.stderr


def test_expired_code_is_refused(tmp_path: Path, procs: list[Proc], sharer) -> None:  # type: ignore[no-untyped-def]
    boot = start_relay(tmp_path, procs)
    src = tmp_path / "src"
    write_random(src / "a.bin", 64 << 10)
    proc, shared = sharer(src, extra=("--bootstrap", boot, "--code-ttl", "2s"))
    seen = proc.wait_for("short_code_expired", timeout=60)
    # Kademlia has no delete: the bootstrap node still names the sharer, who says why it refuses.
    assert any(e["event"] == "short_code_advertised" and e["dht_peers"] >= 1 for e in seen)
    res = _get(shared["short_code"], tmp_path / "out", boot, tmp_path / "rx")
    assert res.returncode == 2, res.stderr
    assert "has expired" in res.stderr and "Traceback" not in res.stderr


def test_typos_fail_locally_with_exit_2(tmp_path: Path) -> None:
    for code, says in [
        ("4127-acid-zoom", "expected 3"),
        ("4127-acid-zoom-yogga", "did you mean 'yoga'"),
        ("41-acid-zoom-yoga", "4-digit number"),
    ]:
        res = run(["get", code, "-o", str(tmp_path / "out")], tmp_path / "rx")
        assert res.returncode == 2, res.stderr
        assert says in res.stderr and len(res.stderr.strip().splitlines()) == 1
        # Typed, not pasted: the advice is to check it, not to copy the long code.
        assert "bad short code" in res.stderr and "check it with the sharer" in res.stderr, res.stderr
        assert "copy the whole code" not in res.stderr


def test_code_show_checks_a_short_code_offline(tmp_path: Path) -> None:
    res = run(["code", "show", "4127 Acid zoom yoga"], tmp_path / "h")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"format": "short", "number": 4127, "words": "<redacted>"}
    res = run(["code", "show", "4127-acid-zoom-yoga", "--reveal-key"], tmp_path / "h")
    assert json.loads(res.stdout)["words"] == "acid-zoom-yoga"
    res = run(["code", "show", "4127-acid-zoom"], tmp_path / "h")
    assert res.returncode == 2 and "expected 3" in res.stderr


def test_unknown_number_is_exit_3(tmp_path: Path, procs: list[Proc]) -> None:
    boot = start_relay(tmp_path, procs)
    res = _get("4127-acid-zoom-yoga", tmp_path / "out", boot, tmp_path / "rx", "--timeout", "5")
    assert res.returncode == 3, res.stderr
    assert "no sharer of short code 4127-…" in res.stderr and "Traceback" not in res.stderr


def test_no_short_code_without_a_dht(tmp_path: Path, sharer) -> None:  # type: ignore[no-untyped-def]
    """No bootstrap node, no mDNS, no remembered peer: nobody could find a
    short code, and one was printed anyway (the peers file's mere path
    counted as a DHT). Found by a usability review."""
    (tmp_path / "f.txt").write_text("x")
    _, shared = sharer(tmp_path / "f.txt", extra=("--no-mdns",))
    assert shared["short_code"] is None, shared


def test_a_sharer_started_again_offers_the_same_short_code(tmp_path: Path, procs: list[Proc], sharer) -> None:  # type: ignore[no-untyped-def]
    """Stopped and started again, the sharer offered a new short code; the
    receiver ran the same command (as ``get`` says to resume) and got "the
    words … do not match", using up a try of the new code (a usability
    review, stop 44). The same code comes back for the rest of its life; one
    that ran out of tries does not."""
    import signal

    boot = start_relay(tmp_path, procs)
    src = tmp_path / "src"
    write_random(src / "a.bin", 64 << 10)
    home = tmp_path / "sharer-home"
    extra = ("--bootstrap", boot, "--code-tries", "1", "--code-ttl", "10m")
    proc, shared = sharer(src, home=home, extra=extra)
    proc.kill(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    proc, again = sharer(src, home=home, extra=extra)
    assert again["short_code"] == shared["short_code"] and 540 <= again["short_code_ttl"] <= 600
    proc.wait_for("short_code_advertised", timeout=60)
    res = _get(shared["short_code"], tmp_path / "out", boot, tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert tree_digest(tmp_path / "out" / "src") == tree_digest(src)
    # Out of tries, the code is dead: the next start offers another.
    res = _get(_wrong_words(shared["short_code"]), tmp_path / "out2", boot, tmp_path / "rx")
    assert res.returncode == 4, res.stderr
    proc.wait_for("short_code_failed", timeout=30)
    proc.kill(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    _, third = sharer(src, home=home, extra=extra)
    assert third["short_code"] != shared["short_code"]


def test_a_short_code_get_waits_for_a_sharer_that_is_restarting(tmp_path: Path, procs: list[Proc], sharer) -> None:  # type: ignore[no-untyped-def]
    """The DHT still names a sharer that stopped; a long code's ``get``
    dials it until ``--timeout``, a short code's failed in 0.4 s ("found a
    sharer … but could not reach it", a usability review, stop 44). Now it
    looks again until the sharer is back (the same code, on a new port)."""
    import signal

    boot = start_relay(tmp_path, procs)
    src = tmp_path / "src"
    write_random(src / "a.bin", 256 << 10)
    home = tmp_path / "sharer-home"
    extra = ("--bootstrap", boot, "--code-ttl", "10m")
    proc, shared = sharer(src, home=home, extra=extra)
    proc.wait_for("short_code_advertised", timeout=60)
    proc.kill(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    args = ["get", shared["short_code"], "-o", str(tmp_path / "out"), "--bootstrap", boot, "--json", "--timeout", "60"]
    getter = start(args, tmp_path / "rx")
    procs.append(getter)
    retry = getter.wait_for("short_code_retry", timeout=30)[-1]
    assert 0 < retry["seconds_left"] <= 60
    _, again = sharer(src, home=home, extra=extra)  # another port: the first is free now, but not asked for
    assert again["short_code"] == shared["short_code"]
    assert getter.wait(timeout=60) == 0, getter.stderr_tail()
    assert tree_digest(tmp_path / "out" / "src") == tree_digest(src)
