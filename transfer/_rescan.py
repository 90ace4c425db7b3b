"""Chunks already on disk, checked against their hashes in two threads.

Why (a resumed ``get`` waits for this before anything flows): the resume
scan read each chunk of a partial file, hashed it, then fed the same bytes
to a running whole-file SHA-256 that nothing reads once every chunk is
checked; one thread, two hash passes (631 MiB of partial data: 0.8 s from
connect to the list of files). ``pread`` and ``hashlib`` both release the
GIL, so two workers each reading and hashing a chunk keep both cores busy,
and one pass is enough: a chunk whose hash matches is the chunk the
authenticated manifest names.

Memory is bounded: at most :data:`AHEAD` chunks are read and not yet
answered. A file of fewer than :data:`MIN_PARALLEL` chunks is checked in
the calling thread. The two workers are one pool for the process, made at
first use; when a caller stops early, it returns only once no worker
still reads its descriptor.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from p2pshare.transfer import _fsutil as fs
from p2pshare.transfer.manifest import Manifest

__all__ = ["AHEAD", "MIN_PARALLEL", "WORKERS", "chunk_specs", "chunks_match", "hash_from"]

WORKERS = 2
#: Chunks in flight at once (each up to one chunk of memory).
AHEAD = 4
MIN_PARALLEL = 4


def chunk_specs(manifest: Manifest, index: int) -> Iterator[tuple[int, int, bytes]]:
    """(length, offset, SHA-256) of each chunk of ``manifest.files[index]``."""
    for c, expected in enumerate(manifest.files[index].chunk_hashes):
        yield manifest.chunk_length(index, c), c * manifest.chunk_size, expected


def hash_from(fd: int, chunk_size: int, start_chunk: int, hasher: hashlib._Hash) -> hashlib._Hash:
    """``hasher`` fed with ``fd``'s bytes from chunk ``start_chunk`` to the end."""
    offset = start_chunk * chunk_size
    while True:
        data = os.pread(fd, chunk_size, offset)
        if not data:
            return hasher
        hasher.update(data)
        offset += len(data)


def _matches(fd: int, length: int, offset: int, expected: bytes) -> bool:
    data = fs.pread_exact(fd, length, offset)
    return len(data) == length and hashlib.sha256(data).digest() == expected


def chunks_match(fd: int, chunks: Iterable[tuple[int, int, bytes]], count: int) -> Generator[bool, None, None]:
    """For each ``(length, offset, expected SHA-256)`` of ``chunks`` (``count``
    of them), in order: whether ``fd`` holds that chunk. A caller that stops
    early (at the first mismatch) closes the generator before ``fd``: that
    waits only for the reads in flight."""
    if count < MIN_PARALLEL:
        for length, offset, expected in chunks:
            yield _matches(fd, length, offset, expected)
        return
    pool = _pool()
    pending: deque[Future[bool]] = deque()
    try:
        for length, offset, expected in chunks:
            pending.append(pool.submit(_matches, fd, length, offset, expected))
            if len(pending) >= AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:  # stopped early: those not started never start,
            future.cancel()
        for future in pending:  # and the caller may close ``fd`` once those running end
            if not future.cancelled():
                future.exception()


_lock = threading.Lock()
_shared: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """One pool for the process, made at first use: a re-get of 10,000
    finished files checks each, and a pool per file costs more than it saves."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = ThreadPoolExecutor(WORKERS, thread_name_prefix="p2pshare-rescan")
        return _shared
