"""Build a manifest from local paths (sharer side, blocking I/O).

Walks the given files and directories (empty directories are kept), skips
symlinks, special files and names a receiver could not safely create (each
reported as a warning), and hashes every file in fixed-size reads on a small
thread pool — hashlib releases the GIL, so hashing uses every core while
memory stays at one buffer per worker. Call it in a thread from async code.

Two steps, so ``share`` can print its code before hashing: ``scan_paths``
(walk and stat: fast, and where bad input fails) and ``hash_scan`` (the
slow part, reporting into a ``HashProgress`` and reusing the hash cache
for files whose identity did not change).
"""

from __future__ import annotations

import collections
import hashlib
import operator
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from p2pshare.transfer import _fsutil as fs
from p2pshare.transfer import hashcache
from p2pshare.transfer.crypto import share_id_for
from p2pshare.transfer.errors import SourceError
from p2pshare.transfer.manifest import (
    FileEntry,
    Manifest,
    ManifestError,
    chunk_size_for,
    make_manifest,
)
from p2pshare.transfer.paths import (
    MAX_DEPTH,
    MAX_ENTRIES,
    MAX_PATH_BYTES,
    PathRuleError,
    check_component,
    check_listed_name,
    fold,
    is_partial_dir_name,
)


@dataclass(frozen=True)
class PreparedShare:
    """A manifest plus where each of its files lives on this machine."""

    manifest: Manifest
    sources: tuple[str | Path, ...]  # aligned with manifest.files
    warnings: tuple[str, ...] = ()
    key: bytes | None = field(default=None, repr=False)
    #: (size, mtime_ns, inode) of each source when it was hashed, aligned
    #: with ``sources``: the sharer checks these around each read instead
    #: of hashing every chunk again.
    identities: tuple[tuple[int, int, int], ...] | None = field(default=None, repr=False)

    @property
    def share_id(self) -> bytes:
        if self.key is None:
            raise ValueError("this share was prepared without a key")
        return share_id_for(self.key)


#: A file found by the walk: manifest path, source, size, mtime_ns, inode.
_Found = tuple[str, str, int, int, int]  # (manifest path, source path, size, mtime_ns, inode)


class HashProgress:
    """Bytes hashed so far, updated from the hashing threads (read from anywhere)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.cached_files = 0
        self.failed: str | None = None
        #: Set to stop the hashing threads at their next chunk (``share`` was stopped).
        self.stop = False
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        if self.stop:
            raise SourceError("stopped while hashing")
        with self._lock:
            self.done += n


@dataclass(frozen=True)
class Scan:
    """What ``scan_paths`` found: enough to size the share before hashing."""

    files: tuple[_Found, ...]
    dirs: tuple[str, ...]
    warnings: tuple[str, ...]
    chunk_size: int
    scanned_at_ns: int

    @property
    def total_bytes(self) -> int:
        return sum(f[2] for f in self.files)


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


_name = operator.attrgetter("name")


def _walk(top: str, rel: str, files: list[_Found], dirs: list[str], warnings: list[str]) -> None:
    """Depth-first, sorted, without recursion (trees may be deep).

    Source paths stay strings: a ``pathlib.Path`` per entry was over half
    the time of scanning 100,000 small files, before the code is printed.
    An entry deeper than a manifest may hold is skipped with a warning (and
    nothing under it is read), like a path that is too long: before, such a
    tree was hashed in full and then refused by the manifest's check."""
    stack: list[tuple[str, str, int]] = [(top, rel, rel.count("/") + 1)]
    while stack:
        path, rel_dir, depth = stack.pop()
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=_name)
        except OSError as exc:
            raise SourceError(f"cannot read directory {path}: {_describe(exc)}") from None
        folded: set[str] = set()
        subdirs: list[tuple[str, str, int]] = []
        for entry in entries:
            child = entry.path
            try:
                check_listed_name(entry.name)
            except PathRuleError as exc:
                warnings.append(f"skipped {child}: {exc}")
                continue
            rel_child = f"{rel_dir}/{entry.name}"
            if len(rel_child) > MAX_PATH_BYTES // 4 and len(rel_child.encode("utf-8")) > MAX_PATH_BYTES:
                warnings.append(f"skipped {child}: path too long")
                continue
            if depth >= MAX_DEPTH:
                warnings.append(f"skipped {child}: deeper than {MAX_DEPTH} levels")
                continue
            key = fold(entry.name)
            if key in folded:
                warnings.append(f"skipped {child}: name differs from another only in case or Unicode form")
                continue
            folded.add(key)
            try:
                if entry.is_symlink():
                    warnings.append(f"skipped symlink {child}")
                elif entry.is_dir(follow_symlinks=False):
                    if is_partial_dir_name(entry.name):
                        # Another share's unfinished download, received here
                        # (an output directory shared later): not the user's
                        # files, and never meant for another receiver.
                        warnings.append(f"skipped {child}: unfinished p2pshare downloads are not shared")
                        continue
                    dirs.append(rel_child)
                    subdirs.append((child, rel_child, depth + 1))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    if not fs.may_read(st) and not os.access(child, os.R_OK):
                        # Listed, the code printed, then hashing it ended the share
                        # (a usability review, stop 44): skipped like a special file.
                        warnings.append(f"skipped {child}: cannot read it (permission denied)")
                        continue
                    files.append((rel_child, child, st.st_size, st.st_mtime_ns, st.st_ino))
                else:
                    warnings.append(f"skipped special file {child}")
            except OSError as exc:
                raise SourceError(f"cannot read {child}: {_describe(exc)}") from None
        stack.extend(reversed(subdirs))


def _open_nonblocking(path: str, flags: int = os.O_RDONLY | os.O_CLOEXEC) -> int:
    """Open a listed file without blocking (also ``open()``'s opener): one
    swapped for a FIFO after the scan would otherwise hold the open (and the
    share's hashing) until something writes to it; ``_check_unchanged``
    then fails it."""
    return os.open(path, flags | os.O_NONBLOCK)


def _check_unchanged(path: str, after: os.stat_result, got: int, found: _Found) -> None:
    """Fail a file whose bytes read or identity (size, mtime, inode) differ
    from what the scan listed: its hashes would go into the manifest and
    the cache."""
    _, _, size, mtime_ns, ino = found
    if got != size or (after.st_size, after.st_mtime_ns, after.st_ino) != (size, mtime_ns, ino):
        raise SourceError(f"{path} changed while it was being read")


#: Files of at least this many chunks hash their chunks on a second thread
#: beside the whole-file hash: one large file then keeps two cores busy.
PARALLEL_CHUNKS = 4


def _digest(piece: memoryview) -> bytes:
    return hashlib.sha256(piece).digest()


def _hash_file(found: _Found, chunk_size: int, progress: HashProgress | None = None) -> tuple[bytes, tuple[bytes, ...]]:
    """Whole-file and chunk SHA-256s in one read of the file.

    For a large file the chunk hashes run on a helper thread while this one
    reads and feeds the whole-file hash (hashlib releases the GIL): two
    buffers alternate, and a buffer is reused only once its chunk hash is
    done. A 10 GiB file took two SHA-256 passes on one core before."""
    _, path, size, _, _ = found
    if 0 < size <= chunk_size:
        return _hash_small(found, progress)
    whole = hashlib.sha256()
    length = min(chunk_size, max(size, 1))
    parallel = size >= PARALLEL_CHUNKS * chunk_size
    bufs = [bytearray(length) for _ in range(2 if parallel else 1)]
    futures: list[Future[bytes]] = []
    chunks: list[bytes] = []
    total = 0
    helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="p2pshare-hash-chunks") if parallel else None
    try:
        with open(path, "rb", buffering=0, opener=_open_nonblocking) as fh:
            i = 0
            while True:
                buf = bufs[i % len(bufs)]
                if helper is not None and i >= 2:
                    futures[i - 2].result()  # its buffer is the one about to be refilled
                view = memoryview(buf)
                n = 0
                while n < len(buf):  # fill a whole chunk (short reads happen)
                    got = fh.readinto(view[n:])
                    if not got:
                        break
                    n += got
                if n == 0:
                    break
                piece = view[:n]
                if helper is not None:
                    futures.append(helper.submit(_digest, piece))
                else:
                    chunks.append(_digest(piece))
                whole.update(piece)
                total += n
                i += 1
                if progress is not None:
                    progress.add(n)
                if n < len(buf):
                    break
        after = os.stat(path)
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {_describe(exc)}") from None
    finally:
        if helper is not None:
            helper.shutdown(wait=True)  # no thread still reads a buffer when we return
    _check_unchanged(path, after, total, found)
    if helper is not None:
        chunks = [f.result() for f in futures]
    return whole.digest(), tuple(chunks)


def _hash_small(found: _Found, progress: HashProgress | None) -> tuple[bytes, tuple[bytes, ...]]:
    """``_hash_file`` of a file of one chunk, whose chunk hash is its
    whole-file hash: one read, one SHA-256 pass, its identity from the open
    descriptor. Through the general path (a buffered file object, a second
    read to meet the end, two SHA-256 passes over the same bytes, a second
    path lookup), 100,000 files of 0.2-4 KiB took 7.2 s of CPU; this way
    4.4 s, and 2.0 s once they also go to the threads in batches
    (``_bounded_map``). A file that changed after it was listed fails, as
    there."""
    _, path, size, _, _ = found
    try:
        fd = _open_nonblocking(path)
        try:
            parts = []
            got = 0
            while got < size:
                data = os.read(fd, size - got)
                if not data:
                    break  # shorter than listed: fails below
                parts.append(data)
                got += len(data)
            after = os.fstat(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {_describe(exc)}") from None
    _check_unchanged(path, after, got, found)
    if progress is not None:
        progress.add(size)
    digest = hashlib.sha256(parts[0] if len(parts) == 1 else b"".join(parts)).digest()
    return digest, (digest,)


#: Small files (of one chunk) go to the hashing threads this many at a time,
#: up to :data:`BATCH_BYTES`: one task and one ``Future`` per file cost more
#: than hashing a 2 KiB file (issue 12).
BATCH_FILES = 64
BATCH_BYTES = 1 << 20


def _hash_batch(
    batch: list[_Found], chunk_size: int, progress: HashProgress | None
) -> list[tuple[bytes, tuple[bytes, ...]]]:
    return [_hash_file(found, chunk_size, progress) for found in batch]


def _bounded_map(
    pool: ThreadPoolExecutor,
    items: Sequence[_Found],
    chunk_size: int,
    window: int,
    cached: Callable[[_Found], tuple[bytes, tuple[bytes, ...]] | None],
    progress: HashProgress | None,
) -> Iterator[tuple[bytes, tuple[bytes, ...]]]:
    """``pool.map`` of ``_hash_file`` over ``items``, in order, that keeps at
    most ``window`` tasks alive (1M files). A file the cache knows is
    answered without a thread, and without a ``Future``: making, settling
    and reading one per file (a condition variable, its locks) took ~0.25 s
    of a 100,000-file re-share's 1.2 s. Small files go in batches
    (:data:`BATCH_FILES`); a larger file is a task of its own."""
    pending: collections.deque[Future[list[hashcache.Hashes]] | list[hashcache.Hashes]] = collections.deque()
    batch: list[_Found] = []
    batch_bytes = 0

    def send_batch() -> None:
        nonlocal batch, batch_bytes
        if batch:
            pending.append(pool.submit(_hash_batch, batch, chunk_size, progress))
            batch, batch_bytes = [], 0

    for found in items:
        hit = cached(found)
        if hit is not None:
            send_batch()  # the results stay in the files' order
            if pending and isinstance(pending[-1], list):
                pending[-1].append(hit)
            else:
                pending.append([hit])
        elif found[2] <= chunk_size:
            batch.append(found)
            batch_bytes += found[2]
            if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                send_batch()
        else:
            send_batch()
            pending.append(pool.submit(_hash_batch, [found], chunk_size, progress))
        while len(pending) >= window:
            first = pending.popleft()
            yield from first if isinstance(first, list) else first.result()
    send_batch()
    for f in pending:
        yield from f if isinstance(f, list) else f.result()


def build_manifest(
    paths: Iterable[Path | str],
    *,
    name: str,
    description: str = "",
    sharer: str | None = None,
    chunk_size: int | None = None,
    key: bytes | None = None,
    workers: int | None = None,
) -> PreparedShare:
    """Scan and hash ``paths`` into a ``PreparedShare`` (``scan_paths`` then ``hash_scan``)."""
    found = scan_paths(paths, chunk_size=chunk_size)
    return hash_scan(found, name=name, description=description, sharer=sharer, key=key, workers=workers)


def scan_paths(paths: Iterable[Path | str], *, chunk_size: int | None = None) -> Scan:
    """Walk and stat ``paths``: every bad input fails here, before any hashing.

    Top-level entry names are the basenames of ``paths``; an explicitly given
    symlink is followed (the user named it), symlinks inside directories are
    skipped. Raises ``SourceError`` (one line) for missing/unreadable input.
    """
    scanned_at = time.time_ns()
    files: list[_Found] = []
    dirs: list[str] = []
    warnings: list[str] = []
    top_names: set[str] = set()
    given = [Path(p) for p in paths]
    if not given:
        raise SourceError("nothing to share: no paths given")
    for path in given:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise SourceError(f"{path}: no such file or directory") from None
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {_describe(exc)}") from None
        top = path.name or Path(os.path.abspath(path)).name
        if not top:
            raise SourceError(f"cannot share {path}: it has no name (filesystem root?)")
        try:
            check_component(top)
        except PathRuleError as exc:
            raise SourceError(f"cannot share {path}: {exc}") from None
        if fold(top) in top_names:
            raise SourceError(f"two paths to share have the same name {top!r}")
        top_names.add(fold(top))
        if stat.S_ISREG(st.st_mode):
            if not os.access(path, os.R_OK):
                raise SourceError(f"cannot read {path}: permission denied")
            files.append((top, str(path.absolute()), st.st_size, st.st_mtime_ns, st.st_ino))
        elif stat.S_ISDIR(st.st_mode):
            dirs.append(top)
            _walk(str(path.absolute()), top, files, dirs, warnings)
        else:
            raise SourceError(f"cannot share {path}: not a regular file or directory")
    if len(files) + len(dirs) > MAX_ENTRIES:
        # Refused now, before a code is printed, not after hashing them all.
        raise SourceError(
            f"cannot share {len(files):,} files and {len(dirs):,} folders: one share holds at most "
            f"{MAX_ENTRIES:,} entries; share fewer paths at a time, or an archive of them"
        )
    size = chunk_size_for([f[2] for f in files], chunk_size)
    return Scan(tuple(files), tuple(dirs), tuple(warnings), size, scanned_at)


def hash_scan(
    found: Scan,
    *,
    name: str,
    description: str = "",
    sharer: str | None = None,
    key: bytes | None = None,
    workers: int | None = None,
    progress: HashProgress | None = None,
    cache: Path | None = None,
) -> PreparedShare:
    """Hash what ``scan_paths`` found into a ``PreparedShare`` (blocking, slow).

    ``cache``: a hash-cache file (``hashcache.cache_file``): files whose
    identity matches an entry are not read; the cache is rewritten with
    this share's files afterwards (best effort: a failure costs only time).
    """
    chunk_size = found.chunk_size
    known = hashcache.load(cache) if cache is not None else hashcache.Cache()
    fresh: dict[hashcache.FileId, hashcache.Hashes] = {}

    # Each file's identity, made once: ``_bounded_map`` asks ``cached`` about
    # the files in order, in this thread, before their results come back.
    idents: list[hashcache.FileId] = []

    def cached(f: _Found) -> hashcache.Hashes | None:
        if cache is None:
            return None
        ident = hashcache.FileId(str(f[1]), f[2], f[3], f[4], chunk_size)
        idents.append(ident)
        hit = known.get(ident)
        if hit is not None and progress is not None:
            progress.add(f[2])
            progress.cached_files += 1  # one thread: the caller's
        return hit

    n_workers = workers or min(4, os.cpu_count() or 1)
    entries: list[FileEntry] = []
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="p2pshare-hash") as pool:
        hashed = _bounded_map(pool, found.files, chunk_size, 4 * n_workers, cached, progress)
        for n, (f, (sha, chunk_hashes)) in enumerate(zip(found.files, hashed, strict=True)):
            entries.append(FileEntry(f[0], f[2], sha, chunk_hashes))
            if cache is not None and hashcache.cacheable(ident := idents[n], found.scanned_at_ns):
                fresh[ident] = (sha, chunk_hashes)
    changed = not known.holds_exactly(fresh)
    known = hashcache.Cache()  # the cache file's bytes: not held while the manifest is built
    if not changed:
        fresh.clear()
    try:
        manifest = make_manifest(
            name=name,
            description=description,
            sharer=sharer,
            chunk_size=chunk_size,
            files=entries,
            dirs=list(found.dirs),
        )
    except ManifestError as exc:
        raise SourceError(f"cannot share these paths: {exc}") from None
    if cache is not None:
        hashcache.settle(cache, fresh, changed=changed)
    identities = tuple((f[2], f[3], f[4]) for f in found.files)
    return PreparedShare(manifest, tuple(f[1] for f in found.files), found.warnings, key, identities)
