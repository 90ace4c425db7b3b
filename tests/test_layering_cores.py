"""The architecture rule for the node's pure cores: decisions are made in
modules that import neither trio nor py-libp2p (they take ``now`` and return
actions), so they stay unit-testable in-process with fake time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE_CORES = [
    "p2pshare.node.events",
    "p2pshare.node.receive.core",
    "p2pshare.node.circuit.schedule",
    "p2pshare.node.circuit.limits",
    "p2pshare.node.dcutr.policy",
    "p2pshare.node.dcutr.birthday",
    "p2pshare.node.natinfo.observed",
    "p2pshare.node.rcmgr.manager",
    "p2pshare.node.rcmgr.limits",
    "p2pshare.node.consent",
    "p2pshare.node.progress",
    "p2pshare.sharecode.pasted",
    "p2pshare.node.plain",
    "p2pshare.node.textshare",
    "p2pshare.node.shortcode",
    "p2pshare.node.shortcode.core",
    "p2pshare.node.shortcode.wire",
    "p2pshare.sharecode.short",
    "p2pshare.node.mdns.wire",
    "p2pshare.node.mdns.core",
    "p2pshare.node.netwatch.core",
    "p2pshare.node.logbudget",
    "p2pshare.node.dialfail",
    "p2pshare.node.slots",
]


@pytest.mark.parametrize("module", PURE_CORES)
def test_core_imports_neither_trio_nor_libp2p(module: str) -> None:
    code = (
        "import sys\n"
        f"__import__({module!r})\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'trio', 'libp2p'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"{module} pulls in {out.stdout.strip()}"
