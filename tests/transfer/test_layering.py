"""The architecture rule: the pure transfer modules never import trio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE = [
    "p2pshare.transfer",
    "p2pshare.transfer.errors",
    "p2pshare.transfer.paths",
    "p2pshare.transfer.manifest",
    "p2pshare.transfer.crypto",
    "p2pshare.transfer.wire",
    "p2pshare.transfer.ranges",
    "p2pshare.transfer.receiver",
    "p2pshare.transfer.sharer",
    "p2pshare.transfer.registry",
    "p2pshare.transfer.scan",
    "p2pshare.transfer.source",
    "p2pshare.transfer.store",
    "p2pshare.transfer.events",
    "p2pshare.transfer.stream",
    "p2pshare.transfer.session",
]


def test_pure_modules_do_not_import_trio() -> None:
    code = f"import sys\nfor m in {PURE!r}: __import__(m)\nprint('trio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_runners_load_lazily() -> None:
    code = "from p2pshare import transfer\nprint(transfer.fetch.__module__, transfer.serve_transfer.__module__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["p2pshare.transfer._trio_fetch", "p2pshare.transfer._trio_serve"], out.stderr
