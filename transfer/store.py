"""Receiver-side file store with journal-free resume (blocking I/O).

Data is written only into ``OUTPUT/.p2pshare-partial/<share_id hex>/<file
index>`` and a file moves to its final name only once every chunk matched
its SHA-256 in the authenticated manifest (whole-file SHA-256 too where a
chunk skipped that check), so an interrupted transfer never leaves a file
that looks complete. Resume needs no journal: on start every partial file is re-hashed
chunk by chunk against the manifest and the chunks that match are kept —
whatever killed either side (even ``kill -9`` mid-write), a torn chunk just
fails its hash and is fetched again. Memory stays bounded: one chunk at a
time, however large or many the files.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import mmap
import os
from collections.abc import Container
from pathlib import Path

from p2pshare.transfer import _direct, _space, ranges
from p2pshare.transfer import _fsutil as fs
from p2pshare.transfer._claim import claim_partial
from p2pshare.transfer._rescan import chunk_specs, chunks_match, hash_from
from p2pshare.transfer._resume_memo import ResumeMemo, RunWrites
from p2pshare.transfer._space import Need
from p2pshare.transfer._whole import WholeFiles
from p2pshare.transfer.errors import (
    SHOWN_CONFLICTS,
    ConflictError,
    IntegrityError,
    OutputError,
    cannot_write,
    conflict_refusal,
    conflicts_error,
)
from p2pshare.transfer.manifest import Manifest
from p2pshare.transfer.paths import PARTIAL_DIR_NAME, Occupied, renamed
from p2pshare.transfer.store_types import MAX_RENAMES, Conflict, ResumePlan, Verified

__all__ = ["Conflict", "Need", "ResumePlan", "Store", "Verified"]


class Store:
    """Writes one manifest's files under ``output_dir``. Not thread-safe,
    except that the two write stages (``verify_chunk``, ``write_verified`` or
    ``write_batch``) may run in two threads at once, each stage in one
    thread at a time."""

    def __init__(
        self, output_dir: Path, manifest: Manifest, share_id: bytes, conflict: Conflict = Conflict.REFUSE
    ) -> None:
        self.output_dir = output_dir
        self.manifest = manifest
        self.conflict = conflict
        #: Files that take another name (--rename) or replace what is there (--overwrite).
        self.final_names: dict[int, str] = {}
        self._replace: set[int] = set()
        self._occupied: Occupied | None = None  # the share's paths (--rename)
        self._share_dir_name = share_id.hex()
        self._root = fs.open_root(output_dir)
        self._partial_root: int | None = None
        self._partial: int | None = None
        n = len(manifest.files)
        self._have = bytearray(manifest.total_chunks)
        self._remaining = [len(f.chunk_hashes) for f in manifest.files]
        self._done = [False] * n
        self._hasher: dict[int, tuple[hashlib._Hash, int]] = {}
        #: Files with a chunk stored without its chunk check (``verify=False``, tests).
        self._unchecked: set[int] = set()
        self._fd: int | None = None
        self._fd_index = -1
        self._direct = _direct.DirectWrites(manifest.chunk_size)  # large files skip the page cache
        self._parents = fs.DirCache(self._root, create=True, root_shown=str(output_dir))  # where finished files go
        # One-chunk files are created whole in place, until the file system refuses.
        self._whole = WholeFiles(self._place, self._shown_index, self._done)
        self._present: list[bool] | None = None
        self._partial_names: frozenset[str] = frozenset()  # the partial directory at ``prepare``
        self._padded: set[int] = set()  # files with a direct write (its last block padded)
        self._memo: ResumeMemo | None = None  # see ``use_memo``
        self._writes = RunWrites(manifest.total_chunks)  # for the memo: what is on disk, unchanged since

    # -- setup -------------------------------------------------------------------
    def use_memo(self, memo: ResumeMemo) -> None:
        """Trust what earlier attempts of this run verified, where unchanged (``_resume_memo``)."""
        memo.bind(self.manifest)
        self._memo = memo

    def assess(self) -> Need:
        """Check conflicts; return what the share still needs here. Writes nothing.

        Separate from :meth:`prepare` so the receiver can be asked (and a
        share that cannot fit refused) before anything is created."""
        m = self.manifest
        if self._partial is None:  # a receiver of this share already at work here: say so first
            self._hold_partial(create=False)
        dirs = fs.DirCache(self._root)  # files come sorted: one open per directory, not per file
        present: list[bool] = []
        conflicts: list[ConflictError] = []
        try:
            for i in range(len(m.files)):
                try:
                    present.append(self._final_matches(i, dirs))
                except ConflictError as exc:  # the next few too, then one refusal names them
                    conflicts.append(exc)
                    if len(conflicts) > SHOWN_CONFLICTS:
                        break
                    present.append(False)
        finally:
            dirs.close()
        if conflicts:
            raise conflicts_error(conflicts)
        for d in m.dirs:
            fs.check_dir(self._root, d, self._shown(d))
        self._present = present
        return self._needed(present)

    def prepare(self) -> ResumePlan:
        """Check conflicts, reuse verified data, create directories."""
        m = self.manifest
        completed: list[str] = []
        have_bytes = 0
        # Conflicts first, so a refusal leaves nothing behind.
        if self._present is None:
            self.assess()
        assert self._present is not None
        present = self._present
        _space.check_space(self._root, self._needed(present).bytes, self.output_dir)
        self._open_partial_dirs()
        for d in m.dirs:
            fd = fs.open_dir(self._root, tuple(d.split("/")), create=True, shown=d, root_shown=str(self.output_dir))
            assert fd is not None
            os.close(fd)
        for i, entry in enumerate(m.files):
            first = m.first_chunk(i)
            if present[i]:
                self._have[first : first + len(entry.chunk_hashes)] = b"\x01" * len(entry.chunk_hashes)
                self._remaining[i] = 0
                self._done[i] = True
                have_bytes += entry.size
                continue
            have_bytes += self._scan_partial(i)
            if self._remaining[i] == 0:
                self._finalize(i, self._hasher.pop(i, (hashlib.sha256(), 0)))
                completed.append(entry.path)
        missing = ranges.to_ranges(g for g in range(m.total_chunks) if not self._have[g])
        return ResumePlan(missing, have_bytes, completed)

    def _needed(self, present: list[bool]) -> Need:
        return _space.needed_bytes(self._root, self._share_dir_name, self.manifest, present)

    def _final_matches(self, index: int, dirs: fs.DirCache) -> bool:
        """True if the final file is already there and correct; on conflict,
        raise, or (``conflict``) plan to replace it or to use another name."""
        entry = self.manifest.files[index]
        parts = tuple(entry.path.split("/"))
        parent = dirs.get(parts[:-1], entry.path)
        if parent is None:
            return False
        same = self._same_file(parent, parts[-1], index)
        if same is not False:
            return bool(same)
        regular = fs.is_regular(fs.lstat_at(parent, parts[-1]))  # else a directory: no flag replaces it
        if self.conflict is Conflict.OVERWRITE and regular:
            self._replace.add(index)
            return False
        if self.conflict is Conflict.RENAME:
            # Not a name another entry of this share takes: it would meet that file later.
            taken = self._occupied = self._occupied or Occupied(
                (f.path for f in self.manifest.files), self.manifest.dirs
            )
            for n in range(1, MAX_RENAMES + 1):
                name = renamed(parts[-1], n)
                if "/".join((*parts[:-1], name)) in taken:
                    continue
                same = self._same_file(parent, name, index)
                if same is not False:  # free (None), or this file from an earlier run (True)
                    self.final_names[index] = name
                    return bool(same)
        raise conflict_refusal(self._shown(entry.path), a_file=regular)

    def _same_file(self, parent: int, name: str, index: int) -> bool | None:
        """None: nothing there; True: this file, verified; False: something else."""
        entry = self.manifest.files[index]
        st = fs.lstat_at(parent, name)
        if st is None:
            return None
        if not fs.is_regular(st) or st.st_size != entry.size:
            return False
        # Without blocking, and checked again once open: a FIFO put at the
        # name after the lstat would hold a blocking open (and this receiver)
        # until something writes to it.
        fd = fs.open_file(parent, name, os.O_RDONLY | os.O_NONBLOCK)
        try:
            now = os.fstat(fd)
            if not fs.is_regular(now) or (now.st_ino, now.st_size) != (st.st_ino, st.st_size):
                return False
            if self._memo is not None and self._memo.final_verified(index, now):
                return True  # verified whole earlier in this run, unchanged since
            matched = chunks_match(fd, chunk_specs(self.manifest, index), len(entry.chunk_hashes))
            try:
                same = all(matched)
            finally:
                matched.close()  # no read of ``fd`` still running when it closes
            if same and self._memo is not None:
                self._memo.note_final(index, now)
            return same
        finally:
            os.close(fd)

    def _open_partial_dirs(self) -> None:
        if self._partial is None:
            self._hold_partial(create=True)
        assert self._partial is not None
        self._partial_names = frozenset(os.listdir(self._partial))  # one listing, not a stat per file

    def _hold_partial(self, *, create: bool) -> None:
        """Open this share's partial directory and hold it until ``close``
        (``_claim``: a second receiver of the share here fails at once)."""
        held = claim_partial(self._root, (PARTIAL_DIR_NAME, self._share_dir_name), self.output_dir, create=create)
        if held is not None:
            self._partial_root, self._partial = held

    def _scan_partial(self, index: int) -> int:
        """Mark the chunks of an existing partial file that verify; return their bytes."""
        assert self._partial is not None
        m = self.manifest
        entry = m.files[index]
        name = str(index)
        st = fs.lstat_at(self._partial, name) if name in self._partial_names else None
        if st is None:
            return 0
        if not fs.is_regular(st):
            raise OutputError(f"unexpected non-file {PARTIAL_DIR_NAME}/{self._share_dir_name}/{name}; remove it")
        if fs.not_ours(st):
            os.unlink(name, dir_fd=self._partial)  # only the name: the file it links stays as it was
            return 0
        fd = self._open_part(index)
        noted = self._memo.partial_chunks(index, os.fstat(fd)) if self._memo is not None else None
        if st.st_size > entry.size:
            os.ftruncate(fd, entry.size)
        first = m.first_chunk(index)
        got = 0
        # Each chunk checked here: no running whole-file hash (``_finalize``
        # reads a file back only if one of its chunks skipped its check);
        # none if this run wrote the file and nothing touched it since.
        matched = noted if noted is not None else chunks_match(fd, chunk_specs(m, index), len(entry.chunk_hashes))
        for c, ok in enumerate(matched):
            if ok:
                self._writes.found(first + c)
                self._have[first + c] = 1
                self._remaining[index] -= 1
                got += m.chunk_length(index, c)
        self._writes.settled(index, fd)
        return got

    # -- writing -------------------------------------------------------------------
    # Two stages, so the runner can overlap them in two threads: ``verify_chunk``
    # (chunk hash + running whole-file hash: owns the hashers and the
    # have-bitmap) and ``write_verified`` (pwrite, then whole-file check and
    # rename: owns the write fd, ``_done`` and ``_writes``). Each stage runs in one thread
    # at a time; every chunk goes through both, in the same order. A chunk is
    # written only after its hash matched.

    def block_for(self, file_index: int) -> mmap.mmap | None:
        """An aligned buffer to decrypt a chunk of this file into, if its
        file is written with direct I/O (large files, a willing file system)."""
        return self._direct.block_for(self.manifest.files[file_index].size)

    def give_block(self, block: mmap.mmap | None) -> None:
        """Return a buffer from ``block_for`` that will not be written."""
        self._direct.give(block)

    def verify_chunk(
        self,
        file_index: int,
        chunk_index: int,
        data: bytes | memoryview,
        *,
        verify: bool = True,
        block: mmap.mmap | None = None,
    ) -> Verified | None:
        """Stage 1: check the chunk's SHA-256 and feed the whole-file SHA-256.

        Returns what ``write_verified`` needs, or None when the chunk is not
        needed (its file is already complete: WANT ranges may be coarsened).
        ``verify=False`` exists only for tests of the whole-file check; the
        runner always verifies.
        """
        m = self.manifest
        entry = m.files[file_index]
        if verify:
            if hashlib.sha256(data).digest() != entry.chunk_hashes[chunk_index]:
                raise IntegrityError(f"chunk {chunk_index} of {self._shown(entry.path)} does not match its hash")
        else:
            self._unchecked.add(file_index)
        if self._remaining[file_index] == 0:
            return None
        if file_index in self._unchecked:  # only then is the whole-file hash a check that adds something
            hasher, upto = self._hasher.get(file_index) or (hashlib.sha256(), 0)
            if upto == chunk_index:
                hasher.update(data)
                upto += 1
            self._hasher[file_index] = (hasher, upto)
        g = m.first_chunk(file_index) + chunk_index
        if not self._have[g]:
            self._have[g] = 1
            self._remaining[file_index] -= 1
        final = (
            (self._hasher.pop(file_index, None) or (hashlib.sha256(), 0)) if self._remaining[file_index] == 0 else None
        )
        return Verified(file_index, chunk_index, data, final, block)

    def write_verified(self, chunk: Verified) -> str | None:
        """Stage 2: write a verified chunk; if it completed its file, check the
        whole-file hash and move the file to its final name (returns its path)."""
        m = self.manifest
        entry = m.files[chunk.file_index]
        if self._is_whole(chunk) and not self._whole.create([chunk], self._parents):
            return entry.path  # created whole in place (``_whole``), or False: the route is off
        fd = self._open_part(chunk.file_index)
        self._writes.before_write(chunk.file_index, fd)
        offset = chunk.chunk_index * m.chunk_size
        block = chunk.block
        try:
            if block is not None and self._direct.write(fd, block, len(chunk.data), offset):
                self._padded.add(chunk.file_index)
            else:
                fs.pwrite_all(fd, chunk.data, offset)
        except OSError as exc:
            raise cannot_write(self._shown(entry.path), exc) from None
        self._writes.after_write(chunk.file_index, m.first_chunk(chunk.file_index) + chunk.chunk_index, fd)
        self.give_block(block)
        if chunk.final is None:
            return None
        self._finalize(chunk.file_index, chunk.final)
        return entry.path

    def write_batch(self, chunks: list[Verified]) -> list[str]:
        """``write_verified`` for each chunk, except that the one-chunk files
        among them are created first, all together (``_whole``: by a
        process of their own when they are many); returns the paths of the
        files completed."""
        wholes = [c for c in chunks if self._is_whole(c)]
        if not wholes:
            return [path for c in chunks if (path := self.write_verified(c)) is not None]
        refused = self._whole.create(wholes, self._parents)
        created = {id(c) for c in wholes}.difference(id(c) for c in refused)
        done = [self.manifest.files[c.file_index].path for c in wholes if id(c) in created]
        done.extend(path for c in chunks if id(c) not in created and (path := self.write_verified(c)) is not None)
        return done

    def write_chunk(
        self, file_index: int, chunk_index: int, data: bytes | memoryview, *, verify: bool = True
    ) -> str | None:
        """Both stages in one call; return the path if the chunk completed its file."""
        chunk = self.verify_chunk(file_index, chunk_index, data, verify=verify)
        return None if chunk is None else self.write_verified(chunk)

    def _open_part(self, index: int) -> int:
        if self._fd_index != index:
            self._close_part()
            assert self._partial is not None
            try:
                self._fd = fs.open_part(self._partial, str(index), lambda: self._partial_shown(index))
            except OSError as exc:
                raise cannot_write(f"into {self.output_dir}", exc) from None
            self._fd_index = index
        assert self._fd is not None
        return self._fd

    def _partial_shown(self, index: int) -> str:
        return f"{PARTIAL_DIR_NAME}/{self._share_dir_name}/{index} in {self.output_dir}"

    def _close_part(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._fd_index = -1
        self._direct.fd_direct = False

    def _finalize(self, index: int, hashed: tuple[hashlib._Hash, int]) -> None:
        """Check the file, then move it to its final name (never replacing).

        For a file with an unchecked chunk, ``hashed`` is the running
        whole-file hash and how many leading chunks it covers; the rest is
        read back from disk and the whole-file SHA-256 must match.
        """
        entry = self.manifest.files[index]
        fd = self._open_part(index)
        # Cut an O_DIRECT padded last block (a longer partial file from an
        # earlier run was cut by the resume scan). Only then: truncating to
        # the same size still rewrites the inode's times, and the fstat was
        # one more system call per small file.
        if index in self._padded and os.fstat(fd).st_size != entry.size:
            os.ftruncate(fd, entry.size)
        hasher, upto = hashed
        # Every chunk checked against the authenticated manifest's chunk
        # hashes (received, or kept by the resume scan): the whole-file hash
        # would be a second SHA-256 pass over the same bytes (~0.4 s/GiB of
        # the receiver's CPU, issue 12) that catches nothing more. It is
        # still computed for a file with a chunk that skipped its check.
        checked = index not in self._unchecked
        if not checked and upto < len(entry.chunk_hashes):
            self._direct.buffered(fd)  # a direct fd reads only into aligned buffers
            hasher = hash_from(fd, self.manifest.chunk_size, upto, hasher)
        self._close_part()
        if not checked and hasher.digest() != entry.sha256:
            # Keep the partial file: the next resume re-checks it chunk by chunk.
            raise IntegrityError(f"{self._shown(entry.path)} does not match its whole-file hash")
        parent, name = self._destination(index)
        assert self._partial is not None
        if index in self._replace:  # --overwrite: atomic, and only now that the new file verified
            os.rename(str(index), name, src_dir_fd=self._partial, dst_dir_fd=parent)
        else:
            fs.move_noreplace(self._partial, str(index), parent, name, functools.partial(self._shown, entry.path))
        self._done[index] = True
        if self._memo is not None and (placed := fs.lstat_at(parent, name)) is not None:
            self._memo.note_final(index, placed)

    def _destination(self, index: int) -> tuple[int, str]:
        """The directory (created if missing) and the name a finished file takes."""
        _, parent, name = self._place(index, self._parents)
        return parent, name

    def _place(self, index: int, dirs: fs.DirCache) -> tuple[tuple[str, ...], int, str]:
        """``_destination`` through ``dirs``, with the directory's path parts."""
        path = self.manifest.files[index].path
        parts = tuple(path.split("/"))
        parent = dirs.get(parts[:-1], path)
        assert parent is not None  # created if missing
        return parts[:-1], parent, self.final_names.get(index, parts[-1])

    # -- whole small files ------------------------------------------------------
    def _is_whole(self, chunk: Verified) -> bool:
        """A checked chunk that is its file's only one, written through the
        page cache, to a name nothing is replacing (not --overwrite)."""
        i = chunk.file_index
        return (
            self._whole.enabled
            and chunk.final is not None
            and chunk.block is None
            and len(self.manifest.files[i].chunk_hashes) == 1
            and i not in self._unchecked
            and i not in self._replace
        )

    # -- teardown ------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        return all(self._done)

    def is_complete(self, index: int) -> bool:
        """The file is verified and in its final place."""
        return self._done[index]

    def finish(self, unavailable: Container[int] = frozenset()) -> None:
        """Check every file is in place and remove the partial directory.

        Files in ``unavailable`` (the sharer stopped serving them) may be
        missing: their partial files are kept, where nothing mistakes them
        for complete files and a later fetch of the same share re-checks
        them chunk by chunk (unchanged chunks of new content are reused)."""
        missing = [i for i, done in enumerate(self._done) if not done and i not in unavailable]
        if missing:
            raise IntegrityError(f"the transfer ended with {len(missing)} file(s) incomplete")
        self._close_part()
        assert self._partial is not None and self._partial_root is not None
        keep = {str(i) for i, done in enumerate(self._done) if not done}
        for name in os.listdir(self._partial):
            if name.isdigit() and name not in keep:  # leftovers of an older version of this share
                with contextlib.suppress(OSError):  # a directory there failed every complete get
                    os.unlink(name, dir_fd=self._partial)
        try:
            os.rmdir(self._share_dir_name, dir_fd=self._partial_root)
            os.rmdir(PARTIAL_DIR_NAME, dir_fd=self._root)
        except OSError:
            pass  # another share's partial files still live there

    def close(self) -> None:
        self._close_part()
        if self._memo is not None and self._partial is not None:
            self._memo.note_partials(self.manifest, self._partial, self._writes, self._done)
        self._whole.close()
        self._parents.close()
        for fd in (self._partial, self._partial_root, self._root):
            if fd is not None and fd >= 0:
                os.close(fd)
        self._partial = self._partial_root = None
        self._root = -1

    def _shown(self, path: str) -> str:
        return str(self.output_dir / path)

    def _shown_index(self, index: int) -> str:
        return self._shown(self.manifest.files[index].path)
