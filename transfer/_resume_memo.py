"""What one ``get`` run has verified on disk, kept across its reconnects.

Why (a hostile-peer review, stop 42): each attempt opens a new ``Store``,
and its resume scan re-hashes every partial file and every file already in
place. A sharer that sends one chunk, then resets the stream, made the
receiver re-read and re-hash the whole share once per chunk: 256 MiB
received in 40 such attempts cost 10.4 s of CPU instead of 1.1 s, without
end, since every chunk is progress. An honest flaky link paid the same: a
10 GiB partial download re-hashed (~7 s) at each reconnect.

Within one run the store knows what it verified and wrote. After an attempt
it notes, per file, the chunks on disk and the file's identity (device,
inode, size, modification and change times, nanoseconds); the next attempt
of the same manifest trusts those chunks if the file's identity is unchanged
and re-hashes it otherwise. Any write to the file (by anything) changes its
change time (``st_ctime``, which no user can set back), so a file touched
since is checked chunk by chunk as before: the identity noted is the one
taken right after this run's own last write (``RunWrites``), and a file
another process wrote in between is not noted at all. One limit: a kernel
before Linux 6.13 keeps change times in coarse ticks (~4 ms), so a write of
the same size by another process within the same tick as ours would go
unseen (as it would within one attempt anyway). A new run starts empty: across
runs the scan stays the only source of truth. Memory: one identity per file
of the manifest and one byte per chunk of the partial files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from p2pshare.transfer import _fsutil as fs
from p2pshare.transfer.manifest import Manifest

__all__ = ["Identity", "ResumeMemo", "RunWrites", "identity"]

#: (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)
Identity = tuple[int, int, int, int, int]


def identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class RunWrites:
    """One attempt's writes, as the memo needs them: each chunk on disk and
    verified (written after its hash matched, or found by the resume scan),
    and per file the identity it had right after this run last wrote or
    scanned it -- None once it changed in between without us (then nothing
    of it is noted: a review found that an identity taken only at the end
    would vouch for bytes another process wrote meanwhile)."""

    def __init__(self, total_chunks: int) -> None:
        self.on_disk = bytearray(total_chunks)
        self.after: dict[int, Identity | None] = {}

    def found(self, chunk: int) -> None:
        self.on_disk[chunk] = 1

    def settled(self, index: int, fd: int) -> None:
        """File ``index`` (open as ``fd``) as the scan left it."""
        self.after[index] = identity(os.fstat(fd))

    def before_write(self, index: int, fd: int) -> None:
        if index in self.after and self.after[index] != identity(os.fstat(fd)):
            self.after[index] = None  # written by someone else since our last look

    def after_write(self, index: int, chunk: int, fd: int) -> None:
        self.on_disk[chunk] = 1
        if self.after.get(index, ()) is not None:
            self.after[index] = identity(os.fstat(fd))


class ResumeMemo:
    """Per run: for the manifest of the last attempt, the files verified in
    place and the chunks written to partial files, each with the identity
    the file had then. Thread-confined to the store's setup and close."""

    def __init__(self) -> None:
        self._manifest: Manifest | None = None
        self._final: dict[int, Identity] = {}
        self._partial: dict[int, tuple[Identity, bytes]] = {}

    def bind(self, manifest: Manifest) -> None:
        """Use the memo for ``manifest``: what was noted for another is dropped
        (a sharer may seal another manifest with the same key)."""
        if self._manifest is not manifest and self._manifest != manifest:
            self._final.clear()
            self._partial.clear()
        self._manifest = manifest

    def final_verified(self, index: int, st: os.stat_result) -> bool:
        """The file in place was verified whole in this run and has not changed."""
        return self._final.get(index) == identity(st)

    def partial_chunks(self, index: int, st: os.stat_result) -> bytes | None:
        """One byte per chunk of file ``index`` (1: on disk and verified), if
        its partial file has not changed since it was noted; else None."""
        noted = self._partial.get(index)
        return noted[1] if noted is not None and noted[0] == identity(st) else None

    def note_final(self, index: int, st: os.stat_result) -> None:
        self._final[index] = identity(st)
        self._partial.pop(index, None)

    def note_partial(self, index: int, st: os.stat_result, chunks: bytes) -> None:
        self._partial[index] = (identity(st), chunks)
        self._final.pop(index, None)

    def note_partials(self, manifest: Manifest, partial_dir: int, writes: RunWrites, done: Sequence[bool]) -> None:
        """At the end of an attempt: for each unfinished partial file in
        ``partial_dir`` that this attempt scanned or wrote, and that nothing
        else changed since, its chunks on disk and its identity."""
        for index, after in writes.after.items():
            st = None if done[index] or after is None else fs.lstat_at(partial_dir, str(index))
            if st is not None and fs.is_regular(st) and identity(st) == after:
                first = manifest.first_chunk(index)
                chunks = bytes(writes.on_disk[first : first + len(manifest.files[index].chunk_hashes)])
                self.note_partial(index, st, chunks)
