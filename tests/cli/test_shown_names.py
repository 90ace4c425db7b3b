"""A name the sharer chose is never printed raw (found by a hostile-peer
review, stop 42): ``invoice<U+202E>fdp.exe`` reads as "invoiceexe.pdf" on a
terminal. The list and the warning were safe already; the final line
("Received … to …") and the error line were not."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cli.helpers import Proc, run

RLO = "\u202e"


def test_the_final_line_shows_a_direction_changing_name_safely(
    tmp_path: Path, sharer: Callable[..., tuple[Proc, dict[str, Any]]]
) -> None:
    src = tmp_path / "docs"
    src.mkdir()
    (src / f"invoice{RLO}fdp.exe").write_bytes(b"MZ")
    _, shared = sharer(src)
    out = tmp_path / "out"
    res = run(["get", shared["code"], "-o", str(out), "--yes"], tmp_path / "rx")
    assert res.returncode == 0, res.stderr
    assert RLO not in res.stdout and RLO not in res.stderr
    assert res.stdout.startswith("Received 1 file") and "docs/invoice?fdp.exe, all verified" in res.stdout
    assert (out / "docs" / f"invoice{RLO}fdp.exe").read_bytes() == b"MZ"  # saved under its own name


def test_the_error_line_is_one_safe_line() -> None:
    from p2pshare.node._output import Reporter

    err = io.StringIO()
    Reporter(json_mode=False, err=err).error(f"chunk 0 of out/invoice{RLO}fdp.exe\nforged line", 4)
    assert err.getvalue() == "p2pshare: error: chunk 0 of out/invoice?fdp.exe?forged line\n"
