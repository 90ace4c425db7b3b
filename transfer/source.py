"""Read, verify and seal chunks on the sharer's side (blocking I/O).

With the files' identities (size, mtime_ns, inode when hashed) the reader
compares ``fstat`` after each read, and a chunk of a file whose identity
is unchanged goes out unhashed: a second SHA-256 pass over every byte sent
cost the sharer ~0.75 s/GiB (issue 12), and the receiver checks every
chunk anyway (the backstop for an edit that keeps size, mtime and inode).
Without identities, or once a file's identity changed, each chunk is
hashed and compared with the manifest, so a changed file's unchanged
chunks still go out. A chunk that does not match ends that file with
"source changed" (``SourceChangedError.file_index``) instead of sending
data that would fail the receiver.
``produce_frames`` batches chunks so that a tree of many tiny files (or a
big file) costs one thread hop and one write per batch; it ends a batch at
a changed file, so the runner can stop serving that file and go on.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from p2pshare.transfer import wire
from p2pshare.transfer.crypto import TAG_BYTES, ChunkCipher
from p2pshare.transfer.errors import SourceChangedError, UnavailableReason
from p2pshare.transfer.manifest import Manifest


class ChunkReader:
    """Reads chunks by global index; keeps one file open at a time."""

    def __init__(
        self,
        manifest: Manifest,
        sources: tuple[str | Path, ...],
        identities: tuple[tuple[int, int, int], ...] | None = None,
    ) -> None:
        self._manifest = manifest
        self._sources = sources
        self._identities = identities
        self._fd: int | None = None
        self._fd_index = -1
        self._scratch = bytearray()  # ``read_view``'s buffer, reused for every chunk

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    def read(self, global_index: int) -> tuple[int, int, bool, bytes]:
        """Return (file index, chunk index, is last chunk, verified plaintext)."""
        file_index, chunk_index, is_last, view = self.read_view(global_index)
        with view:
            return file_index, chunk_index, is_last, bytes(view)

    def read_view(self, global_index: int) -> tuple[int, int, bool, memoryview]:
        """``read``, into the reader's own buffer: the plaintext is a view that
        must be released before the next read (issue 12: a fresh megabyte
        per chunk cost the sharer its first touch every time)."""
        m = self._manifest
        file_index, chunk_index = m.locate(global_index)
        entry = m.files[file_index]
        length = m.chunk_length(file_index, chunk_index)
        path = self._sources[file_index]
        same = True
        if len(self._scratch) < length:
            self._scratch = bytearray(max(length, m.chunk_size))
        data = memoryview(self._scratch)[:length]
        got = 0
        try:
            fd = self._open(file_index)
            while got < length:  # short reads are legal; EOF is not
                n = os.preadv(fd, [data[got:]], chunk_index * m.chunk_size + got)
                if not n:
                    break
                got += n
            if self._identities is not None:
                st = os.fstat(fd)
                same = (st.st_size, st.st_mtime_ns, st.st_ino) == self._identities[file_index]
        except OSError as exc:
            data.release()
            gone = exc.errno in (errno.ENOENT, errno.ENOTDIR)
            reason = UnavailableReason.REMOVED if gone else UnavailableReason.UNREADABLE
            raise SourceChangedError(
                f"cannot read {path}: {exc.strerror or exc}", file_index=file_index, reason=reason
            ) from None
        # Unchanged identity: the bytes are the hashed ones. Changed: the
        # chunk itself may still match (an edit elsewhere in the file), so
        # it still goes out and the receiver keeps it for a later resume.
        fast = self._identities is not None and same
        if got != length or (not fast and hashlib.sha256(data).digest() != entry.chunk_hashes[chunk_index]):
            data.release()
            raise SourceChangedError(f"{path} changed since it was shared", file_index=file_index)
        return file_index, chunk_index, chunk_index == len(entry.chunk_hashes) - 1, data

    def _open(self, file_index: int) -> int:
        if self._fd_index != file_index:
            self.close()
            # O_NONBLOCK: a FIFO put where a shared file was would block the
            # open (and this worker thread) until something writes to it;
            # this way the read fails at once (a FIFO has no offsets) and
            # the file is unavailable to this receiver, as an unreadable one.
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            self._fd = os.open(self._sources[file_index], flags)
            self._fd_index = file_index
        assert self._fd is not None
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._fd_index = -1


def frames_capacity(manifest: Manifest, budget: int) -> int:
    """Bytes a ``produce_frames`` buffer needs: the budget plus one whole frame."""
    return budget + wire.HEADER_BYTES + wire.CHUNK_OVERHEAD + manifest.chunk_size


def produce_frames(
    reader: ChunkReader, cipher: ChunkCipher, indices: Iterator[int], budget: int, out: bytearray | None = None
) -> tuple[memoryview, bool, SourceChangedError | None]:
    """Read+verify+seal chunks until ``budget`` bytes of frames are ready.

    Returns (the frames: a view of ``out``, finished, the file that failed).
    ``out`` (at least ``frames_capacity`` long; a new one if None) may be
    reused once the frames are sent: the sharer keeps a few, so no batch
    pays for fresh memory. A chunk whose file changed ends the batch early
    (not finished) with the chunks before it and the error: the caller
    marks that file unavailable before it asks for the next batch, so
    ``indices`` skips the rest of it. Each chunk is read into the reader's
    buffer and sealed straight into ``out`` (no join copy, one stream write
    per batch). Runs in a worker thread: ``indices`` and ``reader`` must
    only be used by one thread at a time.
    """
    capacity = frames_capacity(reader.manifest, budget)
    if out is None or len(out) < capacity:
        out = bytearray(capacity)
    head_len = wire.HEADER_BYTES + wire.CHUNK_OVERHEAD - TAG_BYTES
    pos = 0
    finished = True
    failed: SourceChangedError | None = None
    with memoryview(out) as view:
        for index in indices:
            try:
                file_index, chunk_index, is_last, data = reader.read_view(index)
            except SourceChangedError as exc:
                failed, finished = exc, False
                break
            with data:
                sealed = len(data) + TAG_BYTES
                with view[pos + head_len : pos + head_len + sealed] as body:
                    nonce = cipher.seal_into(file_index, chunk_index, is_last, data, body)
            view[pos : pos + head_len] = wire.chunk_frame_head(index, nonce, sealed)
            pos += head_len + sealed
            if pos >= budget:
                finished = False
                break
    return memoryview(out)[:pos], finished, failed
