"""The DCUtR pure cores (codec, policy, round schedule, budgets) import neither trio nor py-libp2p."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE = [
    "p2pshare.node.dcutr.wire",
    "p2pshare.node.dcutr.policy",
    "p2pshare.node.dcutr.schedule",
    "p2pshare.node.dcutr.birthday",
    "p2pshare.node.dcutr.budget",
]


def test_dcutr_pure_cores_import_neither_trio_nor_libp2p() -> None:
    code = (
        f"import sys\nfor m in {PURE!r}: __import__(m)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('trio', 'libp2p')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
