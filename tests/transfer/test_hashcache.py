"""The hash cache and the two-step scan (issue 12): in-process, real files."""

from __future__ import annotations

import hashlib
import os
import struct
import time
from pathlib import Path

import pytest
from xfer_helpers import run_past_fifo

from p2pshare.transfer import hashcache
from p2pshare.transfer.errors import SourceError
from p2pshare.transfer.manifest import Manifest
from p2pshare.transfer.scan import HashProgress, build_manifest, hash_scan, scan_paths

CS = 64 * 1024


def backdate(path: Path, seconds: float = 60.0) -> None:
    """Older than ``RACY_SECONDS``: an mtime a later edit would move."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def tree(root: Path) -> Path:
    top = root / "t"
    (top / "sub").mkdir(parents=True)
    (top / "a.bin").write_bytes(os.urandom(3 * CS + 7))
    (top / "sub" / "b.txt").write_bytes(b"hello")
    (top / "empty").write_bytes(b"")
    for f in top.rglob("*"):
        backdate(f)
    return top


def share(top: Path, cache: Path) -> tuple[Manifest, HashProgress]:
    found = scan_paths([top], chunk_size=CS)
    progress = HashProgress(found.total_bytes)
    prepared = hash_scan(found, name="t", key=b"k" * 32, progress=progress, cache=cache)
    return prepared.manifest, progress


def test_reshare_unchanged_reads_nothing(tmp_path: Path) -> None:
    top = tree(tmp_path)
    cache = hashcache.cache_file(tmp_path / "cache", [top])
    first, p1 = share(top, cache)
    assert p1.cached_files == 0 and p1.done == p1.total
    assert cache.exists()
    second, p2 = share(top, cache)
    assert second == first
    assert p2.cached_files == 3 and p2.done == p2.total
    assert first == build_manifest([top], name="t", chunk_size=CS).manifest


def test_a_changed_file_is_hashed_again(tmp_path: Path) -> None:
    top = tree(tmp_path)
    cache = hashcache.cache_file(tmp_path / "cache", [top])
    share(top, cache)
    new = os.urandom(3 * CS + 7)  # same size: only the mtime tells
    (top / "a.bin").write_bytes(new)
    backdate(top / "a.bin", 30.0)
    manifest, progress = share(top, cache)
    assert progress.cached_files == 2
    entry = next(f for f in manifest.files if f.path == "t/a.bin")
    assert entry.sha256 == hashlib.sha256(new).digest()


def test_a_reshare_mixing_cached_and_hashed_files_keeps_each_files_record(tmp_path: Path) -> None:
    """More files than the hashing window, every other one changed: answers
    from the cache and from the hashing threads come back in file order,
    and each file's record in the rewritten cache is its own."""
    top = tmp_path / "many"
    top.mkdir()
    for i in range(60):
        (top / f"f{i:02d}").write_bytes(os.urandom(100 + i))
        backdate(top / f"f{i:02d}")
    cache = hashcache.cache_file(tmp_path / "cache", [top])
    share(top, cache)
    for i in range(0, 60, 2):
        (top / f"f{i:02d}").write_bytes(os.urandom(200 + i))  # another size: a miss
        backdate(top / f"f{i:02d}", 30.0)
    mixed, progress = share(top, cache)
    assert progress.cached_files == 30
    assert mixed == build_manifest([top], name="t", chunk_size=CS).manifest
    again, progress = share(top, cache)
    assert progress.cached_files == 60 and again == mixed


@pytest.mark.parametrize("batch_files", [1, 3, 64])
def test_files_of_every_size_hash_in_order_whatever_the_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_files: int
) -> None:
    """Small files go to the hashing threads in batches, larger ones alone,
    cached ones not at all: every entry still gets its own file's hashes."""
    from p2pshare.transfer import scan

    monkeypatch.setattr(scan, "BATCH_FILES", batch_files)
    top = tmp_path / "mixed"
    top.mkdir()
    sizes = [0, 1, CS - 1, CS, CS + 1, 3 * CS + 5, 17, 2000] * 12
    for i, size in enumerate(sizes):
        (top / f"f{i:03d}").write_bytes(os.urandom(size))
        backdate(top / f"f{i:03d}")
    cache = hashcache.cache_file(tmp_path / "cache", [top])
    for _ in range(2):  # hashed, then from the cache
        manifest, progress = share(top, cache)
        for f in manifest.files:
            data = (tmp_path / f.path).read_bytes()
            assert f.sha256 == hashlib.sha256(data).digest()
            want = [hashlib.sha256(data[i : i + CS]).digest() for i in range(0, len(data), CS)]
            assert list(f.chunk_hashes) == want
    assert progress.cached_files == len(sizes)


def test_recently_modified_files_are_not_cached(tmp_path: Path) -> None:
    """An edit in the same clock tick may not move the mtime (git's racy rule)."""
    top = tmp_path / "fresh"
    top.mkdir()
    (top / "x").write_bytes(b"just written")
    cache = hashcache.cache_file(tmp_path / "cache", [top])
    share(top, cache)
    _, progress = share(top, cache)
    assert progress.cached_files == 0


def record(path: str, size: int = 5, count: int = 1, *, cut: int = 0) -> bytes:
    """One record as ``encode`` writes it (``count`` chunk hashes), less its last ``cut`` bytes."""
    raw = path.encode()
    body = (
        struct.pack(">H", len(raw)) + raw + struct.pack(">QqQII", size, 10**18, 7, CS, count) + b"s" * 32 * (1 + count)
    )
    return body[: len(body) - cut]


M = hashcache.MAGIC
DAMAGED = {
    "empty": b"",
    "version 1 (JSON)": b'{"version": 1, "files": [["p", 1, 2, 3, 4, "00", ""]]}',
    "another magic": b"p2pshare hash cache 9\n" + record("/x"),
    "a record cut short": M + record("/x", cut=1),
    "a cut path length": M + b"\x00",
    "a path running past the end": M + b"\x00\x50/x",
    "a chunk count past the end": M + record("/x", count=1)[:-64],
    "a huge chunk count": M + struct.pack(">H", 2) + b"/x" + struct.pack(">QqQII", 5, 1, 7, CS, 2**32 - 1) + b"s" * 64,
    "a path twice": M + record("/x") + record("/x"),
}


@pytest.mark.parametrize("damage", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_cache_is_ignored(tmp_path: Path, damage: bytes) -> None:
    top = tree(tmp_path)
    cache = hashcache.cache_file(tmp_path / "cache", [top])
    cache.parent.mkdir()
    cache.write_bytes(damage)
    with pytest.raises(ValueError):
        hashcache.decode(damage)
    assert len(hashcache.load(cache)) == 0
    manifest, progress = share(top, cache)
    assert progress.cached_files == 0
    assert manifest == build_manifest([top], name="t", chunk_size=CS).manifest
    assert len(hashcache.load(cache)) == 3  # rewritten whole
    assert cache.read_bytes().startswith(hashcache.MAGIC)


def test_records_round_trip_and_a_file_matches_only_with_its_whole_identity() -> None:
    """Every field of the identity decides; the hashes come back as written,
    however many chunks; a path that needs surrogate escapes survives."""
    a = hashcache.FileId("/t/a", 3 * CS + 7, -5, 2**63, CS)
    b = hashcache.FileId("/t/\udcff-not-utf8", 0, 10**18, 1, CS)
    entries = {a: (b"A" * 32, tuple(bytes([i]) * 32 for i in range(4))), b: (b"B" * 32, ())}
    loaded = hashcache.decode(b"".join(hashcache.encode(entries)))
    assert len(loaded) == 2
    assert loaded.get(a) == entries[a] and loaded.get(b) == entries[b]
    for other in (
        a._replace(size=a.size + 1),
        a._replace(mtime_ns=-4),
        a._replace(inode=1),
        a._replace(chunk_size=CS * 2),
    ):
        assert loaded.get(other) is None
    assert loaded.get(a._replace(path="/t/z")) is None
    assert not loaded.holds_exactly({a: entries[a]})  # b was not met: the cache must be written again
    assert loaded.holds_exactly(entries)


def test_more_records_than_a_share_can_hold_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The index is bounded by what a manifest may list, not by the file's size."""
    monkeypatch.setattr(hashcache, "MAX_ENTRIES", 3)
    three = M + b"".join(record(f"/{i}") for i in range(3))
    assert len(hashcache.decode(three)) == 3
    with pytest.raises(ValueError, match="too many records"):
        hashcache.decode(three + record("/3"))


def test_a_path_a_record_cannot_hold_is_left_out() -> None:
    long = hashcache.FileId("/" + "x" * 70_000, 1, 1, 1, CS)
    short = hashcache.FileId("/y", 1, 1, 1, CS)
    loaded = hashcache.decode(b"".join(hashcache.encode({long: (b"L" * 32, ()), short: (b"S" * 32, ())})))
    assert len(loaded) == 1 and loaded.get(short) == (b"S" * 32, ())


def test_a_cache_larger_than_the_whole_directory_may_be_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    top = tree(tmp_path)
    cache = hashcache.cache_file(tmp_path / "cache", [top])
    share(top, cache)
    assert len(hashcache.load(cache)) == 3
    monkeypatch.setattr(hashcache, "MAX_TOTAL_BYTES", cache.stat().st_size - 1)
    assert len(hashcache.load(cache)) == 0


def test_an_interrupted_write_leaves_the_old_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write-then-rename: a failure mid-write never leaves a half cache in place."""
    top = tree(tmp_path)
    cache = hashcache.cache_file(tmp_path / "cache", [top])
    share(top, cache)
    before = cache.read_bytes()

    def boom(*_a: object, **_k: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(hashcache, "encode", boom)
    with pytest.raises(KeyboardInterrupt):
        hashcache.save(cache, {})
    assert cache.read_bytes() == before
    assert sorted(p.name for p in cache.parent.iterdir()) == [cache.name]  # no temporary left


@pytest.mark.parametrize("content", [b"HELLO", b"HELL", b"HELLO!"], ids=["same-size", "shorter", "longer"])
def test_a_file_changing_while_hashed_fails_the_hash(tmp_path: Path, content: bytes) -> None:
    top = tree(tmp_path)
    found = scan_paths([top], chunk_size=CS)
    (top / "sub" / "b.txt").write_bytes(content)  # after the scan: a new mtime, maybe a new size
    with pytest.raises(SourceError, match="changed while it was being read"):
        hash_scan(found, name="t")


@pytest.mark.parametrize("name", ["sub/b.txt", "a.bin"], ids=["small", "large"])
def test_a_file_swapped_for_a_fifo_fails_instead_of_hanging(tmp_path: Path, name: str) -> None:
    top = tree(tmp_path)
    found = scan_paths([top], chunk_size=CS)
    fifo = top / name
    fifo.unlink()
    os.mkfifo(fifo)  # nothing writes to it
    hung, outcome = run_past_fifo(lambda: hash_scan(found, name="t"), fifo)
    assert not hung, "hashing blocked on a FIFO"
    assert isinstance(outcome, SourceError) and "changed while it was being read" in str(outcome)


def test_stop_ends_hashing_at_the_next_chunk(tmp_path: Path) -> None:
    top = tree(tmp_path)
    found = scan_paths([top], chunk_size=CS)
    progress = HashProgress(found.total_bytes)
    progress.stop = True
    with pytest.raises(SourceError, match="stopped"):
        hash_scan(found, name="t", progress=progress)


def test_cache_file_names_the_set_of_paths(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert hashcache.cache_file(tmp_path, [a, b]) == hashcache.cache_file(tmp_path, [b, a])
    assert hashcache.cache_file(tmp_path, [a]) != hashcache.cache_file(tmp_path, [a, b])


def test_a_large_file_hashes_its_chunks_beside_the_whole_file(tmp_path: Path) -> None:
    """The two-thread path (``PARALLEL_CHUNKS`` or more chunks) gives the same hashes."""
    data = os.urandom(5 * CS + 3)
    (tmp_path / "big").write_bytes(data)
    entry = build_manifest([tmp_path / "big"], name="b", chunk_size=CS).manifest.files[0]
    assert entry.sha256 == hashlib.sha256(data).digest()
    want = tuple(hashlib.sha256(data[o : o + CS]).digest() for o in range(0, len(data), CS))
    assert entry.chunk_hashes == want and len(want) == 6


# -- the directory stays bounded ------------------------------------------------

DAY = 86400.0


def cf(name: str, size: int = 100, age_days: float = 0.0, now: float = 1e9) -> hashcache.CacheFile:
    return hashcache.CacheFile(name, size, now - age_days * DAY)


def test_caches_unused_for_too_long_go_the_one_in_use_stays() -> None:
    files = [cf("old.hashes", age_days=91), cf("recent.hashes", age_days=89), cf("mine.hashes", age_days=400)]
    assert hashcache.stale(files, 1e9, keep="mine.hashes") == ["old.hashes"]


def test_the_least_recently_used_go_until_all_fit() -> None:
    files = [cf(f"{i}.hashes", size=40, age_days=i) for i in range(10)]  # 400 bytes, "9" the oldest
    out = hashcache.stale(files, 1e9, keep="9.hashes", max_bytes=200)
    assert out == ["8.hashes", "7.hashes", "6.hashes", "5.hashes", "4.hashes"]  # "9" is in use: kept
    assert hashcache.stale(files, 1e9, keep="0.hashes", max_bytes=10_000) == []


def test_a_cache_in_use_larger_than_the_bound_is_kept_alone() -> None:
    files = [cf("big.hashes", size=1000), cf("a.hashes", size=10, age_days=1)]
    assert hashcache.stale(files, 1e9, keep="big.hashes", max_bytes=500) == ["a.hashes"]


def test_version_1_caches_go_at_once_their_temporary_files_when_old() -> None:
    files = [cf("v1.json"), cf(".tmp-v1.json", age_days=0.01), cf(".tmp-v1-dead.json", age_days=2)]
    assert hashcache.stale(files, 1e9, keep="x.hashes") == ["v1.json", ".tmp-v1-dead.json"]


def test_temporary_files_go_only_once_no_writer_can_own_them() -> None:
    files = [cf(".tmp-abc.hashes", age_days=2), cf(".tmp-new.hashes", age_days=0.01)]
    assert hashcache.stale(files, 1e9, keep="x.hashes") == [".tmp-abc.hashes"]


def test_a_share_marks_its_cache_used_and_removes_the_stale_ones(tmp_path: Path) -> None:
    src = tree(tmp_path)
    for f in src.rglob("*"):
        backdate(f)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    old = cache_dir / "0123456789abcdef0123456789abcdef.hashes"
    old.write_text("{}")
    leftover = cache_dir / ".tmp-dead.hashes"
    leftover.write_text("{")
    foreign = cache_dir / "notes.txt"  # not ours: never touched
    foreign.write_text("keep me")
    for f in (old, leftover, foreign):
        backdate(f, 100 * DAY)
    version_1 = cache_dir / "fedcba9876543210fedcba9876543210.json"  # used a minute ago, but never read again
    version_1.write_text('{"version": 1, "files": []}')
    cache = hashcache.cache_file(cache_dir, [src])
    assert cache.suffix == hashcache.SUFFIX
    hash_scan(scan_paths([src]), name="t", cache=cache)
    assert cache.exists() and not old.exists() and not leftover.exists() and foreign.exists()
    assert not version_1.exists()
    backdate(cache, 10 * DAY)
    hash_scan(scan_paths([src]), name="t", cache=cache)  # unchanged: not rewritten, but used now
    assert time.time() - cache.stat().st_mtime < 60
