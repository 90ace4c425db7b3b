"""The sharer's hash cache: re-sharing unchanged files costs no hashing.

One JSON file per set of shared paths (its name is a hash of them) under
the data directory maps each file's identity — absolute path, size,
``st_mtime_ns``, inode and the manifest's chunk size — to its whole-file
and chunk SHA-256s. A file whose identity differs is hashed again; so is a
file modified within ``RACY_SECONDS`` of the scan (its mtime may not move
for an edit that follows at once in the same clock tick, as git's "racy"
rule). The cache only saves time: the receiver checks every chunk
against its hash, so a stale entry (content changed with size, mtime and
inode kept) cannot deliver wrong data; that file's transfer fails instead.

Written to a temporary file and renamed over the old one, so an
interrupted write never leaves a half-written cache that looks complete;
a cache that does not parse is ignored as if absent.

The directory is bounded (:func:`stale`, pure): every set of paths ever
shared left its cache for good (~64 bytes per chunk: a 100 GB collection
is 6 MB, written again under a new name whenever the set of paths
differs), so months of sharing grew the data directory without end. Each
share marks its own cache used and removes the others not used for
``MAX_AGE_SECONDS``, then the least recently used until all of them fit
in ``MAX_TOTAL_BYTES``; temporary files left by a process that died while
writing go after ``TMP_AGE_SECONDS``. Removing a cache costs only time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

VERSION = 1
#: Files modified this recently (seconds before the scan) are not cached.
RACY_SECONDS = 2.0
#: A cache not used for this long is removed when another share runs.
MAX_AGE_SECONDS = 90 * 86400
#: All caches together stay within this; the least recently used go first.
MAX_TOTAL_BYTES = 256 << 20
#: A temporary file this old was left by a process that died while writing.
TMP_AGE_SECONDS = 86400
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class FileId:
    """What says a file is unchanged since it was hashed."""

    path: str
    size: int
    mtime_ns: int
    inode: int
    chunk_size: int


Hashes = tuple[bytes, tuple[bytes, ...]]  # whole-file SHA-256, chunk SHA-256s


def cache_file(cache_dir: Path, paths: Iterable[Path]) -> Path:
    """Where the cache for sharing exactly ``paths`` lives."""
    joined = "\0".join(sorted(os.path.abspath(p) for p in paths))
    return cache_dir / f"{hashlib.sha256(joined.encode('utf-8', 'surrogateescape')).hexdigest()[:32]}.json"


def load(path: Path) -> dict[FileId, Hashes]:
    """The cached hashes, or none when the file is missing, foreign or damaged."""
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    out: dict[FileId, Hashes] = {}
    try:
        if raw.get("version") != VERSION:
            return {}
        for p, size, mtime, ino, chunk_size, sha, chunks in raw["files"]:
            blob = bytes.fromhex(chunks)
            if len(blob) % 32 or len(bytes.fromhex(sha)) != 32:
                return {}
            fid = FileId(str(p), int(size), int(mtime), int(ino), int(chunk_size))
            out[fid] = (bytes.fromhex(sha), tuple(blob[i : i + 32] for i in range(0, len(blob), 32)))
    except (AttributeError, KeyError, TypeError, ValueError):
        return {}
    return out


def cacheable(fid: FileId, scanned_at_ns: int) -> bool:
    """False for a file changed so recently that an edit may not show in its mtime."""
    return scanned_at_ns - fid.mtime_ns > RACY_SECONDS * 1e9


def save(path: Path, entries: Mapping[FileId, Hashes]) -> None:
    """Write-then-rename; errors are the caller's (the cache is best effort)."""
    files = [
        [f.path, f.size, f.mtime_ns, f.inode, f.chunk_size, sha.hex(), b"".join(chunks).hex()]
        for f, (sha, chunks) in entries.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps({"version": VERSION, "files": files}, separators=(",", ":")).encode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class CacheFile:
    """One file in the cache directory: its name, size and last use (mtime)."""

    name: str
    size: int
    used_at: float


def stale(
    files: Sequence[CacheFile],
    now: float,
    keep: str,
    *,
    max_age: float = MAX_AGE_SECONDS,
    max_bytes: int = MAX_TOTAL_BYTES,
) -> list[str]:
    """The names to remove so the directory stays bounded; never ``keep``
    (the cache in use) nor a temporary file another share may be writing."""
    out: list[str] = []
    live: list[CacheFile] = []
    for f in files:
        if f.name == keep:
            live.append(f)
        elif f.name.startswith(_TMP_PREFIX):
            if now - f.used_at > TMP_AGE_SECONDS:
                out.append(f.name)
        elif now - f.used_at > max_age:
            out.append(f.name)
        else:
            live.append(f)
    total = sum(f.size for f in live)
    for f in sorted(live, key=lambda f: f.used_at):
        if total <= max_bytes:
            break
        if f.name != keep:
            out.append(f.name)
            total -= f.size
    return out


def settle(path: Path, entries: Mapping[FileId, Hashes], changed: bool) -> None:
    """After a share hashed its files: write its cache (or mark it used),
    then bound the directory. Best effort: a failure costs only time."""
    try:
        if changed:
            save(path, entries)
        elif path.exists():
            os.utime(path)  # used now: the least recently used go first
        _prune(path.parent, path.name, time.time())
    except OSError:
        pass  # only time is lost; the next share hashes again


def _prune(cache_dir: Path, keep: str, now: float) -> None:
    files: list[CacheFile] = []
    with os.scandir(cache_dir) as it:
        for e in it:
            if e.name.endswith(".json") and e.is_file(follow_symlinks=False):
                st = e.stat(follow_symlinks=False)
                files.append(CacheFile(e.name, st.st_size, st.st_mtime))
    for name in stale(files, now, keep):
        with contextlib.suppress(OSError):
            os.unlink(cache_dir / name)
