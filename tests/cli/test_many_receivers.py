"""Many receivers at once share the sharer's send memory, fairly.

Each receiver pipelines up to four 4 MiB send buffers. Twelve receivers of
one real share held 343 MB in the sharer (128 MiB file), and a code holder
can open 64 sessions. Now all receivers together use about
``batch_memory`` (48 MiB), at least one buffer each, so every one still
progresses at the same pace (``ShareRegistry.batches_per_session``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cli.helpers import CLI, ROOT, Proc, _vm_hwm, env_for

RECEIVERS = 12
MB = 1 << 20


def test_twelve_receivers_at_once_all_get_the_file_within_bounded_sharer_memory(
    tmp_path: Path, sharer: Callable[..., tuple[Proc, dict[str, Any]]]
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(96 * MB))
    proc, shared = sharer(src)
    while next(proc.events(timeout=60)).get("event") != "ready":
        pass  # hashed: what grows from here is the sending
    before = _vm_hwm(proc.popen.pid)
    gets = [
        subprocess.Popen(
            [*CLI, "get", shared["code"], "-o", str(tmp_path / f"out{i}"), "--listen", "/ip4/127.0.0.1/tcp/0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env_for(tmp_path / f"rx{i}"),
            cwd=str(ROOT),
            stdin=subprocess.DEVNULL,
        )
        for i in range(RECEIVERS)
    ]
    errors = [g.communicate(timeout=180)[1] for g in gets]
    assert [g.returncode for g in gets] == [0] * RECEIVERS, errors
    for i in range(RECEIVERS):
        assert (tmp_path / f"out{i}" / "big.bin").stat().st_size == 96 * MB
    grown = _vm_hwm(proc.popen.pid) - before
    # Old code: ~20 MB per receiver (four 4 MiB buffers each), ~250 MB here.
    assert grown < 150 * MB, f"sharer grew by {grown / MB:.0f} MB"
