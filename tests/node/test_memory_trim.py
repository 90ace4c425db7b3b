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
