"""The architecture rule: the pure transfer modules never import trio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE = [
    "transfer", "transfer.errors", "transfer.paths", "transfer.manifest", "transfer.crypto", "transfer.wire",
    "transfer.ranges", "transfer.receiver", "transfer.sharer", "transfer.registry", "transfer.scan",
    "transfer.source", "transfer.store", "transfer.events", "transfer.stream", "transfer.session",
]


def test_pure_modules_do_not_import_trio() -> None:
    code = f"import sys\nfor m in {PURE!r}: __import__(m)\nprint('trio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_runners_load_lazily() -> None:
    code = "import transfer\nprint(transfer.fetch.__module__, transfer.serve_transfer.__module__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["transfer._trio_fetch", "transfer._trio_serve"], out.stderr
