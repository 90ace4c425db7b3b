"""cone↔symmetric through real Linux NATs with the real product: the path
must end direct, by birthday port probing (node/dcutr/birthday.py).

Before it, both cells stayed relayed (DCUtR's CONNECT from behind a
symmetric NAT has no address to offer). Measured figure, 10 runs of each:
``scripts/natlab matrix --cells cone:symmetric,symmetric:cone`` in a loop
(see CHANGELOG.md). One run here; a lost round is retried once inside the
product, so a failure here means the method broke, not bad luck
(p ≈ 1e-7 per transfer with the default sizes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.natlab.conftest import REPO, natlab

pytestmark = pytest.mark.natlab

PRODUCT = REPO / ".venv" / "bin" / "p2pshare"
CELLS = [("cone", "symmetric"), ("symmetric", "cone")]


def _birthday_upgrades(celldir: Path) -> list[dict[str, object]]:
    """The ``upgraded`` events by birthday probing either process printed."""
    found = []
    for out in sorted(celldir.glob("*.out")):
        for line in out.read_text(errors="replace").splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict) and ev.get("event") == "upgraded" and ev.get("method") == "birthday":
                found.append(ev)
    return found


def test_cone_and_symmetric_end_direct_by_birthday_probing(prefix: str, tmp_path: Path) -> None:
    if not PRODUCT.exists():
        pytest.skip(f"{PRODUCT} missing: run ./scripts/test (it installs the project)")
    cells = ",".join(f"{s}:{r}" for s, r in CELLS)
    res = natlab(
        "matrix", "--cells", cells, "--size", "4m", "--timeout", "40", "--prefix", prefix, "--out", str(tmp_path),
        timeout=300,
    )  # fmt: skip
    table = (tmp_path / "matrix.md").read_text() if (tmp_path / "matrix.md").exists() else res.stdout
    assert res.returncode == 0, f"{table}\n{res.stderr[-3000:]}"
    results = json.loads((tmp_path / "matrix.json").read_text())["cells"]
    assert [(c["sharer"], c["receiver"]) for c in results] == CELLS
    for cell in results:
        final = cell["upgraded_path"] if cell["upgraded"] else cell["path"]
        assert final in ("direct", "hole-punched") and cell["verified"], (cell, table)
        celldir = tmp_path / "cells" / f"{cell['sharer']}__{cell['receiver']}"
        assert _birthday_upgrades(celldir), f"no birthday upgrade in {celldir}: {table}"
