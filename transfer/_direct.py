"""Received file data written around the page cache (``O_DIRECT``), from a
small pool of page-aligned buffers (blocking I/O, the store's write thread).

Why (issue 12): a received byte that goes through the page cache is copied
into a freshly allocated page-cache folio. On a VM that hands freed memory
back to its host (free page reporting, as on this project's machines) those
folios are mostly pages the host took back, and their first touch is what
a buffered write pays: 1.5-2.5 s of kernel CPU per GiB received, measured
on a 1 GiB write (``os.pwrite`` in 16 KiB pieces, 3 s after the previous
file was deleted). The same GiB written with ``O_DIRECT`` in 1 MiB blocks
cost 0.04-0.07 s of kernel CPU and 0.55 s of wall time: the device reads
the block straight from our buffer. The receiver never reads the data back
(every chunk was hashed before the write), so the cache buys it nothing.

The buffers are reused: AES-GCM decrypts a chunk straight into one
(``ChunkCipher.open_into``), SHA-256 checks it there, the write thread
writes it and gives it back. No megabyte-sized ``bytes`` per chunk is
allocated and freed, so the heap does not churn through fresh pages either.

Direct I/O wants the file offset, the length and the buffer address aligned
to the device's block: offsets are whole chunks (a multiple of
:data:`ALIGN` or direct I/O is not used), buffers come from ``mmap`` (page
aligned), and a file's last chunk is written padded with zeros to
:data:`ALIGN` -- the store truncates the file to its size before it moves
it into place, and a resume truncates a longer partial file first. A file
system that refuses direct I/O (``EINVAL`` on ``fcntl`` or on the write)
gets buffered writes for the rest of the transfer; nothing else changes.
Files below :data:`MIN_FILE` stay buffered: for many small files a
synchronous device write each would cost more than the page cache does.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
from collections import deque

#: Alignment of offsets, lengths and buffers (the largest common logical
#: block size; a multiple of 512).
ALIGN = 4096
#: ``os.O_DIRECT`` where the platform has it (Linux); 0 turns the path off.
O_DIRECT: int = getattr(os, "O_DIRECT", 0)
#: Smallest file written with direct I/O (one default chunk).
MIN_FILE = 1 << 20
#: Free buffers kept for reuse (the receive pipeline holds ~10 in flight).
POOL_KEEP = 16


def align_up(n: int) -> int:
    """``n`` rounded up to a whole number of :data:`ALIGN` blocks."""
    return -(-n // ALIGN) * ALIGN


class BlockPool:
    """Page-aligned buffers of one size for decrypted chunks.

    Thread-safe without a lock: taken by the verify stage (the event-loop
    thread), given back in the write thread (``deque.append``/``pop`` are
    atomic). Never more than
    :data:`POOL_KEEP` are kept; the pipeline's byte budget bounds how many
    are out at once. A buffer is never unmapped explicitly (a view of it may
    outlive its return): the garbage collector unmaps it with its last view.
    """

    def __init__(self, size: int) -> None:
        self.size = align_up(max(size, 1))
        self._free: deque[mmap.mmap] = deque()

    def take(self) -> mmap.mmap:
        try:
            return self._free.pop()
        except IndexError:
            return mmap.mmap(-1, self.size)

    def give(self, block: mmap.mmap) -> None:
        if len(self._free) < POOL_KEEP and len(block) == self.size:
            self._free.append(block)


def set_direct(fd: int, on: bool) -> bool:
    """Turn ``O_DIRECT`` on or off for ``fd``; False if the file system
    refuses it (or the platform has none)."""
    if not O_DIRECT:
        return not on
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    wanted = (flags | O_DIRECT) if on else (flags & ~O_DIRECT)
    if wanted == flags:
        return True
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, wanted)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise
    return True


def write_block(fd: int, block: mmap.mmap, length: int, offset: int) -> bool:
    """Write ``block[:length]`` at ``offset`` on a direct ``fd``, padded with
    zeros to :data:`ALIGN` (the caller truncates the file to its size).

    Returns False, with direct I/O turned off for ``fd``, when the file
    system refuses the write (``EINVAL``): the caller then writes the same
    bytes through the page cache, over anything written here.
    """
    padded = align_up(length)
    if padded > len(block) or offset % ALIGN:
        raise ValueError("block write not aligned")
    if padded != length:
        block[length:padded] = bytes(padded - length)
    with memoryview(block) as view:
        pos = 0
        while pos < padded:
            try:
                with view[pos:padded] as piece:
                    pos += os.pwrite(fd, piece, offset + pos)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                set_direct(fd, False)
                return False
    return True


class DirectWrites:
    """One store's direct I/O: its buffer pool, and whether the file it has
    open is in direct mode (one file at a time, like the store's write fd).

    ``pool`` is None when chunks are not aligned, the platform has no
    ``O_DIRECT``, or the file system refused it once (then every later
    write is buffered)."""

    def __init__(self, chunk_size: int) -> None:
        aligned = O_DIRECT and chunk_size % ALIGN == 0
        self.pool: BlockPool | None = BlockPool(chunk_size) if aligned else None
        self.fd_direct = False

    def block_for(self, file_size: int) -> mmap.mmap | None:
        """A buffer for a chunk of a file this large, if it goes direct."""
        if self.pool is None or file_size < MIN_FILE:
            return None
        return self.pool.take()

    def give(self, block: mmap.mmap | None) -> None:
        if block is not None and self.pool is not None:
            self.pool.give(block)

    def write(self, fd: int, block: mmap.mmap, length: int, offset: int) -> bool:
        """Write around the page cache; False if the caller must write buffered."""
        if self.pool is not None:
            self.fd_direct = self.fd_direct or set_direct(fd, True)
            if self.fd_direct and write_block(fd, block, length, offset):
                return True
        self.pool, self.fd_direct = None, False  # the file system refuses it: buffered from now on
        return False

    def buffered(self, fd: int) -> None:
        """Before reading ``fd`` into unaligned buffers."""
        if self.fd_direct:
            self.fd_direct = not set_direct(fd, False)
