"""A folder inside the output directory that ``get`` may not write into,
through the real CLI, with file modes binding (``file_modes_bind``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import Proc, run, write_random
from tests.harness import file_modes_bind

Sharer = Callable[..., tuple[Proc, dict[str, Any]]]


@pytest.mark.parametrize("size", [300_000, 3 << 20], ids=["one-chunk", "chunked"])
def test_the_error_names_the_folder_that_refused(tmp_path: Path, sharer: Sharer, size: int) -> None:
    """``get`` said "cannot write into OUT: Permission denied" when only
    ``OUT/tree`` refused: the person looked at the wrong directory (a
    usability review, stop 44). What arrived stays for the next run."""
    src = tmp_path / "tree"
    write_random(src / "sub" / "a.bin", size)
    _, shared = sharer(src)
    out = tmp_path / "out"
    (out / "tree").mkdir(parents=True)
    os.chmod(out, 0o777)  # the test user (root, its file powers dropped) may write OUT itself
    (out / "tree").chmod(0o555)
    try:
        res = run(["get", shared["code"], "-o", str(out), "--yes"], tmp_path / "rx", prefix=file_modes_bind())
    finally:
        (out / "tree").chmod(0o755)
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("p2pshare: error:")]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr
    assert f"{out / 'tree'}: Permission denied" in errors[0], errors[0]
    res = run(["get", shared["code"], "-o", str(out), "--yes"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert (out / "tree" / "sub" / "a.bin").read_bytes() == (src / "sub" / "a.bin").read_bytes()
