"""Chunk ranges, and WANT coarsening end to end (re-sent chunks are harmless)."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import pytest
import trio
from xfer_helpers import RECEIVER_ID, SHARER_ID, make_tree, snapshot, stream_pair

from p2pshare.transfer import ShareRegistry, build_manifest, fetch, ranges, serve_transfer, wire

CS = 64 * 1024


def test_to_ranges_and_back() -> None:
    idx = [0, 1, 2, 5, 7, 8]
    r = ranges.to_ranges(idx)
    assert r == [(0, 3), (5, 6), (7, 9)]
    assert list(ranges.iter_ranges(r)) == idx and ranges.count(r) == 6


def test_coarsen_merges_smallest_gaps() -> None:
    r = [(0, 1), (2, 3), (10, 11), (12, 13)]
    assert ranges.coarsen(r, 4) == r
    assert ranges.coarsen(r, 2) == [(0, 3), (10, 13)]
    assert ranges.coarsen(r, 1) == [(0, 13)]


@pytest.mark.parametrize("bad", [[(1, 1)], [(2, 3), (0, 1)], [(0, 2), (1, 3)], [(0, 11)], [(-1, 2)]])
def test_check_ranges(bad: list[tuple[int, int]]) -> None:
    with pytest.raises(ValueError):
        ranges.check_ranges(bad, 10)


async def test_coarsened_want_completes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = secrets.token_bytes(32)
    prepared = build_manifest([make_tree(tmp_path / "src")], name="t", chunk_size=CS, key=key)
    registry = ShareRegistry()
    sid = registry.add(prepared)
    out = tmp_path / "out"
    shutil.copytree(tmp_path / "src", out)
    # big.bin (first in order) half there as a partial with every other chunk torn,
    # small.bin (last) missing, exact.bin (in between) complete.
    partial = out / ".p2pshare-partial" / sid.hex()
    partial.mkdir(parents=True)
    order = [f.path for f in prepared.manifest.files]
    assert order[0] == "tree/big.bin" and order[-1] == "tree/sub/deeper/small.bin"
    big = out / "tree" / "big.bin"
    with open(big, "r+b") as fh:
        for c in range(0, 48, 2):
            fh.seek(c * CS)
            fh.write(os.urandom(16))
    os.rename(big, partial / "0")
    (out / "tree" / "sub" / "deeper" / "small.bin").unlink()
    monkeypatch.setattr(wire, "MAX_WANT_RANGES", 1)
    r, s = stream_pair()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: serve_transfer(s, registry=registry, local_peer_id=SHARER_ID, remote_peer_id=RECEIVER_ID)
            )
            result = await fetch(r, key=key, output_dir=out, local_peer_id=RECEIVER_ID, remote_peer_id=SHARER_ID)
    assert snapshot(out) == snapshot(tmp_path / "src")
    # one range from chunk 0 to the last chunk: includes exact.bin's chunks again
    assert result.bytes_received > 24 * CS
