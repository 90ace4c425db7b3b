"""The hash cache and the two-step scan (issue 12): in-process, real files."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

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


def test_recently_modified_files_are_not_cached(tmp_path: Path) -> None:
    """An edit in the same clock tick may not move the mtime (git's racy rule)."""
    top = tmp_path / "fresh"
    top.mkdir()
    (top / "x").write_bytes(b"just written")
    cache = hashcache.cache_file(tmp_path / "cache", [top])
    share(top, cache)
    _, progress = share(top, cache)
    assert progress.cached_files == 0


@pytest.mark.parametrize(
    "damage",
    [b"", b"{not json", b'{"version": 99, "files": []}', b'{"version": 1, "files": [["p", 1, 2, 3, 4, "zz", ""]]}'],
)
def test_a_damaged_cache_is_ignored(tmp_path: Path, damage: bytes) -> None:
    top = tree(tmp_path)
    cache = hashcache.cache_file(tmp_path / "cache", [top])
    cache.parent.mkdir()
    cache.write_bytes(damage)
    manifest, progress = share(top, cache)
    assert progress.cached_files == 0
    assert manifest == build_manifest([top], name="t", chunk_size=CS).manifest
    assert json.loads(cache.read_bytes())["version"] == hashcache.VERSION  # rewritten whole


def test_an_interrupted_write_leaves_the_old_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write-then-rename: a failure mid-write never leaves a half cache in place."""
    top = tree(tmp_path)
    cache = hashcache.cache_file(tmp_path / "cache", [top])
    share(top, cache)
    before = cache.read_bytes()

    def boom(*_a: object, **_k: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(hashcache.json, "dumps", boom)
    with pytest.raises(KeyboardInterrupt):
        hashcache.save(cache, {})
    assert cache.read_bytes() == before
    assert sorted(p.name for p in cache.parent.iterdir()) == [cache.name]  # no temporary left


def test_a_file_changing_while_hashed_fails_the_hash(tmp_path: Path) -> None:
    top = tree(tmp_path)
    found = scan_paths([top], chunk_size=CS)
    (top / "sub" / "b.txt").write_bytes(b"HELLO")  # same size, new mtime, after the scan
    with pytest.raises(SourceError, match="changed while it was being read"):
        hash_scan(found, name="t")


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
    files = [cf("old.json", age_days=91), cf("recent.json", age_days=89), cf("mine.json", age_days=400)]
    assert hashcache.stale(files, 1e9, keep="mine.json") == ["old.json"]


def test_the_least_recently_used_go_until_all_fit() -> None:
    files = [cf(f"{i}.json", size=40, age_days=i) for i in range(10)]  # 400 bytes, "9" the oldest
    out = hashcache.stale(files, 1e9, keep="9.json", max_bytes=200)
    assert out == ["8.json", "7.json", "6.json", "5.json", "4.json"]  # "9" is in use: kept
    assert hashcache.stale(files, 1e9, keep="0.json", max_bytes=10_000) == []


def test_a_cache_in_use_larger_than_the_bound_is_kept_alone() -> None:
    files = [cf("big.json", size=1000), cf("a.json", size=10, age_days=1)]
    assert hashcache.stale(files, 1e9, keep="big.json", max_bytes=500) == ["a.json"]


def test_temporary_files_go_only_once_no_writer_can_own_them() -> None:
    files = [cf(".tmp-abc.json", age_days=2), cf(".tmp-new.json", age_days=0.01)]
    assert hashcache.stale(files, 1e9, keep="x.json") == [".tmp-abc.json"]


def test_a_share_marks_its_cache_used_and_removes_the_stale_ones(tmp_path: Path) -> None:
    src = tree(tmp_path)
    for f in src.rglob("*"):
        backdate(f)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    old = cache_dir / "0123456789abcdef0123456789abcdef.json"
    old.write_text("{}")
    leftover = cache_dir / ".tmp-dead.json"
    leftover.write_text("{")
    foreign = cache_dir / "notes.txt"  # not ours: never touched
    foreign.write_text("keep me")
    for f in (old, leftover, foreign):
        backdate(f, 100 * DAY)
    cache = hashcache.cache_file(cache_dir, [src])
    hash_scan(scan_paths([src]), name="t", cache=cache)
    assert cache.exists() and not old.exists() and not leftover.exists() and foreign.exists()
    backdate(cache, 10 * DAY)
    hash_scan(scan_paths([src]), name="t", cache=cache)  # unchanged: not rewritten, but used now
    assert time.time() - cache.stat().st_mtime < 60
