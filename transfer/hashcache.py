"""The sharer's hash cache: re-sharing unchanged files costs no hashing.

One file per set of shared paths (its name is a hash of them) under the
data directory maps each file's identity — absolute path, size,
``st_mtime_ns``, inode and the manifest's chunk size — to its whole-file
and chunk SHA-256s. A file whose identity differs is hashed again; so is a
file modified within ``RACY_SECONDS`` of the scan (its mtime may not move
for an edit that follows at once in the same clock tick, as git's "racy"
rule). The cache only saves time: the receiver checks every chunk
against its hash, so a stale entry (content changed with size, mtime and
inode kept) cannot deliver wrong data; that file's transfer fails instead.

The format (``VERSION`` 2) is binary: :data:`MAGIC`, then one record per
file, ``path length (u16) | path (UTF-8) | size (u64) | mtime_ns (i64) |
inode (u64) | chunk size (u32) | chunks (u32) | SHA-256 | chunk SHA-256s``,
all big-endian. Version 1 was JSON: for 100,000 small files, loading it
took 0.59 s and ~114 MB of the sharer's memory (a list per file of hex
strings, then the same again as objects) before a single file was
matched, and writing it ~0.3 s and ~56 MB more (issue 12). Records are
read straight from the file's bytes, and written one by one.

Written to a temporary file and renamed over the old one, so an
interrupted write never leaves a half-written cache that looks complete;
a cache that does not parse is ignored as if absent (so is one of version
1, which is removed the next time a share settles the directory).

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
import os
import struct
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from p2pshare.transfer.paths import MAX_ENTRIES

VERSION = 2
#: The first bytes of a cache file of this version.
MAGIC = b"p2pshare hash cache %d\n" % VERSION
#: The file name's suffix; version 1's (``.json``) are removed when seen.
SUFFIX = ".hashes"
_OLD_SUFFIX = ".json"
_PATH_LEN = struct.Struct(">H")
#: size, mtime_ns, inode, chunk size, number of chunk hashes.
_RECORD = struct.Struct(">QqQII")
_COUNT = struct.Struct(">I")
_COUNT_AT = _RECORD.size - _COUNT.size
_DIGEST = 32
#: Files modified this recently (seconds before the scan) are not cached.
RACY_SECONDS = 2.0
#: A cache not used for this long is removed when another share runs.
MAX_AGE_SECONDS = 90 * 86400
#: All caches together stay within this; the least recently used go first.
MAX_TOTAL_BYTES = 256 << 20
#: A temporary file this old was left by a process that died while writing.
TMP_AGE_SECONDS = 86400
_TMP_PREFIX = ".tmp-"


class FileId(NamedTuple):
    """What says a file is unchanged since it was hashed. A tuple: hashed
    and compared in C, ~80 bytes, for one key per shared file."""

    path: str
    size: int
    mtime_ns: int
    inode: int
    chunk_size: int


Hashes = tuple[bytes, tuple[bytes, ...]]  # whole-file SHA-256, chunk SHA-256s


def cache_file(cache_dir: Path, paths: Iterable[Path]) -> Path:
    """Where the cache for sharing exactly ``paths`` lives."""
    joined = "\0".join(sorted(os.path.abspath(p) for p in paths))
    name = hashlib.sha256(joined.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return cache_dir / f"{name}{SUFFIX}"


def load(path: Path) -> Cache:
    """The cached hashes, or none when the file is missing, foreign, of
    another version, larger than the whole directory may be, or damaged."""
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size > MAX_TOTAL_BYTES:
                return Cache()
            data = fh.read(MAX_TOTAL_BYTES + 1)
    except OSError:
        return Cache()
    try:
        return decode(data)
    except ValueError:
        return Cache()


class Cache:
    """A cache file's records, found by path. Only the index (path ->
    where its record starts) is built at load; a record's fields and hashes
    are read when a file with that path is looked up, and its hashes made
    only if the file's identity matches: ~0.16 KB per cached file instead
    of objects for every field of every record."""

    def __init__(self, data: bytes = b"", index: dict[str, int] | None = None) -> None:
        self._data = data
        self._index: dict[str, int] = index or {}
        self._hits: set[str] = set()

    def __len__(self) -> int:
        return len(self._index)

    def get(self, fid: FileId) -> Hashes | None:
        """The hashes cached for exactly this file identity, else None."""
        at = self._index.get(fid.path)
        if at is None:
            return None
        data = self._data
        record = _RECORD.unpack_from(data, at)  # size, mtime_ns, inode, chunk_size, count
        if record[:4] != fid[1:]:  # FileId: path, then the same four fields (C-level compare)
            return None
        pos = at + _RECORD.size + _DIGEST
        count = record[4]
        chunks = (
            (data[pos : pos + _DIGEST],)  # one chunk: most files of a large tree
            if count == 1
            else tuple([data[i : i + _DIGEST] for i in range(pos, pos + _DIGEST * count, _DIGEST)])
        )
        self._hits.add(fid.path)
        return data[pos - _DIGEST : pos], chunks

    def holds_exactly(self, entries: Mapping[FileId, Hashes]) -> bool:
        """True if writing ``entries`` would write this cache again: one
        for each of its records, each found by :meth:`get` (whose hashes
        the share then used as they were)."""
        return len(entries) == len(self._index) and all(f.path in self._hits for f in entries)


def decode(data: bytes) -> Cache:
    """Index a cache file's bytes; ``ValueError`` if anything in them is not
    what :func:`encode` writes (a record cut short or running past the end,
    a path twice, more records than a manifest may list files). Every
    record is bounded here, so :meth:`Cache.get` reads only within the
    data, and the index within ~20 MB."""
    if not data.startswith(MAGIC):
        raise ValueError("not a hash cache of this version")
    index: dict[str, int] = {}
    pos, end = len(MAGIC), len(data)
    try:
        while pos < end:
            (n,) = _PATH_LEN.unpack_from(data, pos)
            pos += _PATH_LEN.size
            path = data[pos : pos + n].decode("utf-8", "surrogateescape")
            pos += n
            (count,) = _COUNT.unpack_from(data, pos + _COUNT_AT)
            stop = pos + _RECORD.size + _DIGEST * (1 + count)
            if stop > end:
                raise ValueError("a record runs past the end")
            if index.setdefault(path, pos) != pos:
                raise ValueError("a path twice")
            if len(index) > MAX_ENTRIES:  # more files than a share can hold: not ours
                raise ValueError("too many records")
            pos = stop
    except struct.error as exc:  # a record cut short
        raise ValueError(f"damaged hash cache: {exc}") from None
    return Cache(data, index)


def encode(entries: Mapping[FileId, Hashes]) -> Iterable[bytes]:
    """The cache file's bytes, record by record (no copy of the whole).
    A file whose path is longer than a record can say is left out: it is
    hashed again next time, nothing worse."""
    yield MAGIC
    for f, (sha, chunks) in entries.items():
        raw = f.path.encode("utf-8", "surrogateescape")
        if len(raw) > 0xFFFF or len(sha) != _DIGEST or any(len(c) != _DIGEST for c in chunks):
            continue
        try:
            fields = _RECORD.pack(f.size, f.mtime_ns, f.inode, f.chunk_size, len(chunks))
        except struct.error:  # a value no record can hold: not cached
            continue
        yield b"".join((_PATH_LEN.pack(len(raw)), raw, fields, sha, *chunks))


def cacheable(fid: FileId, scanned_at_ns: int) -> bool:
    """False for a file changed so recently that an edit may not show in its mtime."""
    return scanned_at_ns - fid.mtime_ns > RACY_SECONDS * 1e9


def save(path: Path, entries: Mapping[FileId, Hashes]) -> None:
    """Write-then-rename; errors are the caller's (the cache is best effort)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as fh:
            for piece in encode(entries):
                fh.write(piece)
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
    (the cache in use) nor a temporary file another share may be writing.
    A cache of version 1 (``.json``) is never read again: it goes at once."""
    out: list[str] = []
    live: list[CacheFile] = []
    for f in files:
        if f.name == keep:
            live.append(f)
        elif f.name.endswith(_OLD_SUFFIX) and not f.name.startswith(_TMP_PREFIX):
            out.append(f.name)
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
            if e.name.endswith((SUFFIX, _OLD_SUFFIX)) and e.is_file(follow_symlinks=False):
                st = e.stat(follow_symlinks=False)
                files.append(CacheFile(e.name, st.st_size, st.st_mtime))
    for name in stale(files, now, keep):
        with contextlib.suppress(OSError):
            os.unlink(cache_dir / name)
