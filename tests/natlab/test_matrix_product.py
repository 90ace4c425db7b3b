"""The NAT matrix with the real product: a CI subset of cells that covers
every expectation level (direct, punch, relay) and every profile;
cone↔symmetric must end direct (birthday port probing, node/dcutr/birthday.py).

The full matrix (37 cells, ~10 minutes on 2 cores) is one command:
``scripts/natlab matrix`` (see README). This subset keeps the NAT suite
inside its CI budget; a cell that loses its direct or hole-punched path
fails here, not just changes a number.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.natlab.conftest import REPO, natlab

pytestmark = pytest.mark.natlab

PRODUCT = REPO / ".venv" / "bin" / "p2pshare"
CI_CELLS = [
    ("public", "cone"),  # direct: the sharer is reachable
    ("same-lan", "same-lan"),  # direct: on the receiver's LAN
    ("cone", "cone"),  # punch: the common home router on both sides
    ("cone-rst", "cone"),  # punch: a NAT that answers strangers with RST
    ("cone-rst", "cone-rst"),  # punch: RST on both sides (fresh port per round)
    ("firewall", "double"),  # punch: stateful firewall vs double NAT
    ("double", "cone-rst"),  # punch
    ("cone", "public"),  # a NATed sharer, a public receiver: upgraded
    ("symmetric", "cone"),  # punch: birthday port probing through the symmetric NAT
    ("cone", "symmetric"),  # punch: the same with the symmetric side receiving
    ("symmetric", "symmetric"),  # relay: both symmetric, relayed and verified
]


def test_matrix_subset_with_the_real_product(prefix: str, tmp_path: Path) -> None:
    if not PRODUCT.exists():
        pytest.skip(f"{PRODUCT} missing: run ./scripts/test (it installs the project)")
    cells = ",".join(f"{s}:{r}" for s, r in CI_CELLS)
    res = natlab(
        "matrix",
        "--cells",
        cells,
        "--size",
        "4m",
        "--timeout",
        "40",
        "--prefix",
        prefix,
        "--out",
        str(tmp_path),
        timeout=900,
    )
    table = (tmp_path / "matrix.md").read_text() if (tmp_path / "matrix.md").exists() else res.stdout
    assert res.returncode == 0, f"{table}\n{res.stderr[-3000:]}"
    assert res.stdout.strip().splitlines()[-1] == f"{len(CI_CELLS)} passed, 0 failed"
    results = json.loads((tmp_path / "matrix.json").read_text())
    cells_out = results["cells"] if isinstance(results, dict) else results
    assert len(cells_out) == len(CI_CELLS)
