"""malloc_trim gives freed heap back (glibc); the soak found the relay keeping it."""

from __future__ import annotations

import ctypes.util

import pytest
import trio

from p2pshare.node import _memory


@pytest.mark.skipif(_memory._TRIM is None, reason="no glibc malloc_trim here")
def test_trim_returns_freed_heap_to_the_system() -> None:
    def rss_kib() -> int:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError

    # 8 KiB blocks (below glibc's mmap threshold: they live in the arena);
    # freeing every other one leaves whole free pages between live blocks,
    # which free() cannot give back and malloc_trim can.
    blocks = [bytearray(8192) for _ in range(8000)]
    del blocks[::2]
    kept = rss_kib()
    assert _memory.malloc_trim()
    assert rss_kib() < kept - 8 * 1024, "malloc_trim gave back less than 8 MiB of ~31 MiB freed"
    assert len(blocks) == 4000  # the live half stays alive until here


async def test_trim_forever_runs_until_cancelled(autojump_clock: trio.testing.MockClock) -> None:
    with trio.move_on_after(_memory.TRIM_EVERY * 3.5):
        await _memory.trim_forever()
    assert ctypes.util.find_library("c") is None or _memory._TRIM is not None


_REUSE = """
import resource, sys
from p2pshare.node import _memory
if sys.argv[1] == "keep":
    assert _memory.keep_freed_heap()
block = bytes(range(256)) * 4096

def burst():
    bufs = [bytearray(1 << 20) for _ in range(32)]
    for b in bufs:
        b[:] = block  # touch every page
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

burst()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(burst() - before)
"""


@pytest.mark.skipif(_memory._TRIM is None, reason="glibc only")
def test_keep_freed_heap_reuses_a_burst_instead_of_faulting_it_in_again() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    faults = {}
    for mode in ("default", "keep"):
        out = subprocess.run([sys.executable, "-c", _REUSE, mode], env=env, capture_output=True, text=True, check=True)
        faults[mode] = int(out.stdout)
    # 32 MiB is 8192 pages: glibc's defaults unmap the burst and fault it in
    # again; kept, the second burst reuses the first one's pages.
    assert faults["default"] > 4000 and faults["keep"] < 1000, faults
