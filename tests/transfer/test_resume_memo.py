"""Within one ``get`` run a reconnect re-hashes nothing this run wrote and
nothing has touched since (``transfer/_resume_memo.py``).

Found by a hostile-peer review: a sharer that sent one chunk per attempt
and reset the stream made the receiver re-hash the whole share at every
attempt (256 MiB in 40 attempts: 10.4 s of CPU instead of 1.1 s). Real
stores on real files; what is counted is every chunk read back and hashed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_store import CS, SID, partial_dir, write
from xfer_helpers import make_tree, snapshot

from p2pshare.transfer import ResumeMemo, _rescan
from p2pshare.transfer import store as store_module
from p2pshare.transfer.scan import PreparedShare, build_manifest
from p2pshare.transfer.store import Store


@pytest.fixture
def prepared(tmp_path: Path) -> PreparedShare:
    return build_manifest([make_tree(tmp_path / "src")], name="t", chunk_size=CS)


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Chunks read back from disk and hashed by the stores, counted."""
    count: list[int] = []
    real = _rescan.chunks_match

    def counting(fd: int, chunks: Iterator[tuple[int, int, bytes]], n: int) -> Iterator[bool]:
        for ok in real(fd, chunks, n):
            count.append(1)
            yield ok

    monkeypatch.setattr(store_module, "chunks_match", counting)
    return count


def _attempt(out: Path, p: PreparedShare, memo: ResumeMemo, chunks: range | list[int]) -> tuple[Store, int]:
    """One attempt: a new store, its resume plan's bytes, ``chunks`` written."""
    store = Store(out, p.manifest, SID)
    store.use_memo(memo)
    plan = store.prepare()
    write(store, p, chunks)
    return store, plan.already_have_bytes


def test_a_reconnect_trusts_what_this_run_wrote(tmp_path: Path, prepared: PreparedShare, hashed: list[int]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    memo = ResumeMemo()
    total = prepared.manifest.total_chunks
    store, _ = _attempt(out, prepared, memo, range(0, 10))
    store.close()
    for step in range(10, 20):  # one chunk an attempt, as the hostile sharer did
        store, have = _attempt(out, prepared, memo, [step])
        assert have == step * CS  # every chunk written before is counted as here
        store.close()
    assert hashed == []  # nothing read back: before, chunks 0..n-1 at every attempt
    store, have = _attempt(out, prepared, memo, range(20, total))
    store.finish()
    store.close()
    assert snapshot(out) == snapshot(tmp_path / "src")


def test_a_partial_file_touched_between_attempts_is_checked_again(
    tmp_path: Path, prepared: PreparedShare, hashed: list[int]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    memo = ResumeMemo()
    store, _ = _attempt(out, prepared, memo, range(0, 10))
    store.close()
    part = partial_dir(out) / "0"
    with open(part, "r+b") as fh:  # same size; only its change time tells
        fh.seek(3 * CS + 7)
        fh.write(b"\x00\x00")
    store = Store(out, prepared.manifest, SID)
    store.use_memo(memo)
    plan = store.prepare()
    assert hashed, "a file changed since it was noted must be read back"
    assert (3, 4) in plan.missing and plan.already_have_bytes == 9 * CS
    store.close()


def test_a_file_verified_in_place_is_not_read_again(tmp_path: Path, prepared: PreparedShare, hashed: list[int]) -> None:
    """The first attempt finished the big file and moved it into place; the
    next one's conflict check found it already here only by re-hashing it."""
    out = tmp_path / "out"
    out.mkdir()
    memo = ResumeMemo()
    big = prepared.manifest.files[0]
    assert big.path == "tree/big.bin"
    store, _ = _attempt(out, prepared, memo, range(len(big.chunk_hashes)))
    store.close()
    assert (out / big.path).exists()
    store = Store(out, prepared.manifest, SID)
    store.use_memo(memo)
    plan = store.prepare()
    assert hashed == [] and plan.already_have_bytes >= big.size
    store.close()
    os.utime(out / big.path)  # touched (even if not changed): read back, and still the file
    store = Store(out, prepared.manifest, SID)
    store.use_memo(memo)
    plan = store.prepare()
    assert len(hashed) == len(big.chunk_hashes) and plan.already_have_bytes >= big.size
    store.close()


def test_another_manifest_with_the_same_key_starts_the_memo_again(tmp_path: Path, hashed: list[int]) -> None:
    """A sharer may seal another manifest with the same key (same partial
    directory, other chunk hashes): what was noted for one says nothing of the other."""
    first = build_manifest([make_tree(tmp_path / "a")], name="t", chunk_size=CS)
    other = build_manifest([make_tree(tmp_path / "b")], name="other", chunk_size=CS)
    assert first.manifest != other.manifest
    out = tmp_path / "out"
    out.mkdir()
    memo = ResumeMemo()
    store, _ = _attempt(out, first, memo, range(0, 5))
    store.close()
    store = Store(out, other.manifest, SID)
    store.use_memo(memo)
    store.prepare()
    assert hashed, "the other manifest's resume scan reads the partial file back"
    store.close()


@pytest.mark.parametrize("when", ["before_close", "between_writes"])
def test_a_change_during_the_attempt_is_never_vouched_for(
    tmp_path: Path, prepared: PreparedShare, hashed: list[int], when: str
) -> None:
    """A review: the identity was taken only at the end of the attempt, so
    bytes another process wrote meanwhile were noted as this run's, and the
    next attempt finished a file that failed its SHA-256. Only identities
    taken right after our own writes (unchanged since) are noted now."""
    out = tmp_path / "out"
    out.mkdir()
    memo = ResumeMemo()
    big = prepared.manifest.files[0]
    last = len(big.chunk_hashes) - 1
    store, _ = _attempt(out, prepared, memo, range(0, 5 if when == "between_writes" else last))
    with open(partial_dir(out) / "0", "r+b") as fh:
        fh.seek(3 * CS + 7)
        fh.write(b"\x00\x00")
    if when == "between_writes":
        write(store, prepared, range(5, last))
    store.close()
    store = Store(out, prepared.manifest, SID)
    store.use_memo(memo)
    plan = store.prepare()
    assert hashed, "a file changed under this run must be read back"
    assert (3, 4) in plan.missing
    write(store, prepared, [g for lo, hi in plan.missing for g in range(lo, hi)])
    store.finish()
    store.close()
    assert snapshot(out) == snapshot(tmp_path / "src")
