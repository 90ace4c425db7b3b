"""Hostile manifests against the real ``p2pshare get`` (issue 9, finding 3).

The sharer is a real process holding the key (tests/hostile/sharer.py): it
passes the handshake and the key proof, then sends an attack manifest
sealed with the share key. The whole receiving process must refuse it with
exit 4 (or 2 where only the free-space check can tell) and one error line,
write nothing, and stay under 200 MB peak RSS (its own VmHWM: a bound, not
a speed). Before: the 1M-hash manifest took get to 341 MB, 430,183 empty
files (the 64 MiB cap) to 725 MB.

``scripts/bench_manifest_attacks.py --process`` measures every attack.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cli.helpers import hostile_sharer, run_measured
from tests.hostile.manifest_attacks import HUGE_BYTES

pytestmark = pytest.mark.slow
PEAK_RSS_LIMIT = 200_000_000


@pytest.mark.parametrize(
    ("attack", "exit_code", "message"),
    [
        ("deep", 4, "bad manifest: unsafe path in manifest: path deeper than 128 levels"),
        ("chunks-1m", 4, "MANIFEST message too large"),
        ("entries-cap", 5, "does not fit"),
        ("garbage", 4, "the manifest failed authentication"),
    ],
)
def test_get_refuses_a_hostile_manifest_within_bounds(
    tmp_path: Path, attack: str, exit_code: int, message: str
) -> None:
    if exit_code == 5 and shutil.disk_usage(tmp_path).free >= HUGE_BYTES:
        pytest.skip("this filesystem has room for the attack's 4 TiB file")
    sharer, code = hostile_sharer("sharer", attack, tmp_path, f"hostile-{attack}")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = tmp_path / "out"
    try:
        res = run_measured(["get", code, "-o", str(out), "--timeout", "30"], tmp_path / "rx", timeout=60, cwd=cwd)
    finally:
        sharer.stop(grace=0)
    costs = f"peak RSS {res.peak_rss / 1e6:.0f} MB, CPU {res.cpu_seconds:.2f} s"
    assert res.returncode == exit_code, f"{costs}\n{res.stderr}"
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("p2pshare: error:")]
    assert len(errors) == 1 and message in errors[0], res.stderr
    assert errors[0] == res.stderr.strip().splitlines()[-1], res.stderr
    assert not out.exists() or [p.name for p in out.iterdir()] in ([], [".p2pshare-partial"])
    assert list(cwd.iterdir()) == []
    assert res.peak_rss < PEAK_RSS_LIMIT, costs


def _asked_then_declined(tmp_path: Path, attack: str) -> str:
    """``get`` of the hostile sharer's ``attack`` at a terminal: the screen up
    to the question, answered no (exit 6, nothing written)."""
    from tests.cli.ptyproc import PtyProc

    sharer, code = hostile_sharer("sharer", attack, tmp_path, f"hostile-{attack}")
    out = tmp_path / "out"
    p = PtyProc(["get", code, "-o", str(out), "--timeout", "30"], tmp_path / "rx")
    try:
        screen = " ".join(p.read_until("[y/N]").split())
        p.send("n\n")
        assert p.wait() == 6, p.output
    finally:
        p.close()
        sharer.stop(grace=0)
    assert not out.exists()
    return screen


def test_a_text_share_with_directories_is_asked_about_like_any_share(tmp_path: Path) -> None:
    """A text share is printed without a question; one marked as text that
    names directories made them all first (a hostile-peer review, stop 44:
    ~130,000 from 1,020 deep ones). It is now a share like any other."""
    assert "note.txt" in _asked_then_declined(tmp_path, "text-dirs")


def test_the_directories_a_share_makes_are_shown_and_counted(tmp_path: Path) -> None:
    """50 empty files 100 levels deep: "50 files, 0 B", "Needs 0 B", and
    5,000 directories made (a hostile-peer review, stop 44: 130,938 from
    1,031 files, 512 MiB). The person sees the folders and their space."""
    screen = _asked_then_declined(tmp_path, "many-dirs")
    assert "'evil': 50 files in 5000 folders, 0 B" in screen, screen
    assert "Needs 19.5 MiB;" in screen, screen
