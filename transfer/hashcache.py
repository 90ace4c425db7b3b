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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

VERSION = 1
#: Files modified this recently (seconds before the scan) are not cached.
RACY_SECONDS = 2.0


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
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps({"version": VERSION, "files": files}, separators=(",", ":")).encode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
