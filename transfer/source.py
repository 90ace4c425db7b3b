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

    def read(self, global_index: int) -> tuple[int, int, bool, bytes]:
        """Return (file index, chunk index, is last chunk, verified plaintext)."""
        m = self._manifest
        file_index, chunk_index = m.locate(global_index)
        entry = m.files[file_index]
        length = m.chunk_length(file_index, chunk_index)
        path = self._sources[file_index]
        same = True
        try:
            fd = self._open(file_index)
            data = os.pread(fd, length, chunk_index * m.chunk_size)
            while len(data) < length:  # short reads are legal; EOF is not
                more = os.pread(fd, length - len(data), chunk_index * m.chunk_size + len(data))
                if not more:
                    break
                data += more
            if self._identities is not None:
                st = os.fstat(fd)
                same = (st.st_size, st.st_mtime_ns, st.st_ino) == self._identities[file_index]
        except OSError as exc:
            gone = exc.errno in (errno.ENOENT, errno.ENOTDIR)
            reason = UnavailableReason.REMOVED if gone else UnavailableReason.UNREADABLE
            raise SourceChangedError(
                f"cannot read {path}: {exc.strerror or exc}", file_index=file_index, reason=reason
            ) from None
        # Unchanged identity: the bytes are the hashed ones. Changed: the
        # chunk itself may still match (an edit elsewhere in the file), so
        # it still goes out and the receiver keeps it for a later resume.
        fast = self._identities is not None and same
        if len(data) != length or (not fast and hashlib.sha256(data).digest() != entry.chunk_hashes[chunk_index]):
            raise SourceChangedError(f"{path} changed since it was shared", file_index=file_index)
        return file_index, chunk_index, chunk_index == len(entry.chunk_hashes) - 1, data

    def _open(self, file_index: int) -> int:
        if self._fd_index != file_index:
            self.close()
            self._fd = os.open(self._sources[file_index], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            self._fd_index = file_index
        assert self._fd is not None
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._fd_index = -1


def produce_frames(
    reader: ChunkReader, cipher: ChunkCipher, indices: Iterator[int], budget: int
) -> tuple[bytearray, bool, SourceChangedError | None]:
    """Read+verify+seal chunks until ``budget`` bytes of frames are ready.

    Returns (the frames in one buffer, finished, the file that failed). A
    chunk whose file changed ends the batch early (not finished) with the
    chunks before it and the error: the caller marks that file unavailable
    before it asks for the next batch, so ``indices`` skips the rest of it.
    Chunks are sealed straight into that buffer (no join copy, one stream
    write per batch). Runs in a worker thread: ``indices`` and ``reader``
    must only be used by one thread at a time.
    """
    chunks: list[tuple[int, int, int, bool, bytes]] = []
    size = 0
    finished = True
    failed: SourceChangedError | None = None
    for index in indices:
        try:
            file_index, chunk_index, is_last, data = reader.read(index)
        except SourceChangedError as exc:
            failed, finished = exc, False
            break
        chunks.append((index, file_index, chunk_index, is_last, data))
        size += wire.HEADER_BYTES + wire.CHUNK_OVERHEAD + len(data)
        if size >= budget:
            finished = False
            break
    out = bytearray(size)
    pos = 0
    with memoryview(out) as view:
        for index, file_index, chunk_index, is_last, data in chunks:
            sealed = len(data) + TAG_BYTES
            head_len = wire.HEADER_BYTES + wire.CHUNK_OVERHEAD - TAG_BYTES
            body = view[pos + head_len : pos + head_len + sealed]
            nonce = cipher.seal_into(file_index, chunk_index, is_last, data, body)
            body.release()
            view[pos : pos + head_len] = wire.chunk_frame_head(index, nonce, sealed)
            pos += head_len + sealed
    assert pos == size
    return out, finished, failed
