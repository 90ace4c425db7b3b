"""One-chunk files created whole under their final names, by a process of
their own when there are many (issue 12: many small files).

A file of one chunk that verified needs no partial file: it is created
complete in its directory (an unnamed inode, written, then linked under its
name, never replacing one: ``_fsutil.create_complete``). For a tree of small
files that was the receiver's bottleneck, and not for the kernel's work
alone: each file takes four system calls, and after each one the writing
thread waits for the GIL, which the threads reading, decrypting and hashing
hold. Measured on 100,000 files of 0.2-4 KiB (tmpfs): the write stage was
busy 4.0 s of the 4.25 s the chunks took, and 0.4 s with no file created.
A second writing thread changed nothing (each took as long). So a batch of
:data:`PROCESS_MIN` files or more goes to the file-writer process
(``_file_writer``, started on first use), which has no GIL to wait for: the
receiver sends it the directories it opened and checked itself, as
descriptors, and per file a single name and the bytes.

Whatever the route, a file is created complete or not at all, and the first
error is raised once the files before it are made. A file system that
refuses unnamed inodes turns the route off for good: the files it refused
come back, to be written through a partial file. If the process cannot be
started, files are created in the calling thread.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from p2pshare.transfer import _file_writer as proc
from p2pshare.transfer import _fsutil as fs
from p2pshare.transfer.errors import OutputError, cannot_write

__all__ = ["PROCESS_MIN", "WholeFile", "WholeFiles"]

log = logging.getLogger(__name__)

#: Fewer one-chunk files than this in a batch are created in the calling
#: thread: starting the processes costs ~20 ms, a batch's round trip ~0.1 ms.
PROCESS_MIN = 64
#: File-writer processes: creating files in different directories runs on
#: both cores of a small machine. 100,000 files of 0.2-4 KiB on tmpfs, files
#: a second after connect: ~22,000 in this thread, 24,000-25,700 with one
#: process, 26,600-29,200 with two.
WRITERS = 2
#: Seconds a process has to say it is ready (it starts in ~20 ms).
READY_SECONDS = 10.0


class WholeFile(Protocol):
    """What :class:`WholeFiles` needs of a verified one-chunk file."""

    @property
    def file_index(self) -> int: ...

    @property
    def data(self) -> bytes | memoryview: ...


#: (file index, a directory cache) -> (directory key, directory fd, final name).
Destination = Callable[[int, fs.DirCache], tuple[tuple[str, ...], int, str]]


class _Part:
    """Files for one process: their directories as descriptors, and the body."""

    def __init__(self) -> None:
        self.chunks: list[WholeFile] = []
        self.dirs: dict[tuple[str, ...], int] = {}
        self.fds: list[int] = []
        self.pieces: list[bytes | memoryview] = []

    def add(self, chunk: WholeFile, key: tuple[str, ...], parent: int, name: str) -> None:
        d = self.dirs.get(key)
        if d is None:
            d = self.dirs[key] = len(self.fds)
            self.fds.append(os.dup(parent))  # the directory cache closes its own as it moves on
        raw = name.encode("utf-8", "surrogateescape")
        self.pieces += (proc.FILE.pack(d, chunk.file_index, len(raw), len(chunk.data)), raw, chunk.data)
        self.chunks.append(chunk)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


class _Writer:
    """One file-writer process and its socket."""

    #: The program: ``_file_writer``'s source file (tests put another in its place).
    program = proc.__file__

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", self.program, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self.batch = 0
        try:  # it started and can run: a missing source file or interpreter fails here, not mid-transfer
            ours.settimeout(READY_SECONDS)
            ready = ours.recv(len(proc.READY)) == proc.READY
            ours.settimeout(None)
        except OSError:
            ready = False
        if not ready:
            self.close()
            raise OSError(f"{self.program} did not start")

    def send(self, part: _Part) -> None:
        body = b"".join(part.pieces)
        part.pieces = []
        self.batch += 1
        header = proc.HEADER.pack(b"B", self.batch, len(part.fds), len(part.chunks), len(body))
        socket.send_fds(self.sock, [header], part.fds)
        proc.send_pieces(self.sock, body)

    def reply(self) -> tuple[list[int], int, int, int, str]:
        """(indexes made, outcome, failed index, errno, message); raises
        OSError or ValueError if the process is gone or answers nonsense."""
        raw = self.sock.recv(proc.REPLY.size + 1000)
        if len(raw) < proc.REPLY.size:
            raise ValueError("no answer")
        _, batch, count, outcome, failed, code, size = proc.REPLY.unpack_from(raw)
        message = raw[proc.REPLY.size : proc.REPLY.size + size].decode("utf-8", "replace")
        made = proc.recv_exactly(self.sock, 4 * count) if count else b""
        if batch != self.batch or made is None:
            raise ValueError("a wrong answer")
        return list(struct.unpack(f">{count}I", made)), outcome, failed, code, message

    def close(self) -> None:
        self.sock.close()  # the process exits at the end of its input
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class WholeFiles:
    """Creates verified one-chunk files in place; owns the file-writer
    processes. ``done[i]`` is set for each file created."""

    def __init__(self, destination: Destination, shown: Callable[[int], str], done: list[bool]) -> None:
        self.enabled = True  # until the file system refuses an unnamed inode
        self._destination = destination
        self._shown = shown
        self._done = done
        self._writers: list[_Writer] = []
        self._no_process = False  # they could not be started: create in the calling thread

    def create(self, chunks: Sequence[WholeFile], parents: fs.DirCache) -> list[WholeFile]:
        """Create each file (``parents``: the calling thread's directory
        cache); return the chunks refused (the route is off: write those
        another way)."""
        if len(chunks) < PROCESS_MIN or not self.enabled or not self._started():
            return self._here(chunks, parents)
        share = -(-len(chunks) // len(self._writers))
        parts: list[_Part] = [_Part()]
        try:
            for chunk in chunks:  # cut into parts of about ``share`` files and MAX_FDS directories
                key, parent, name = self._destination(chunk.file_index, parents)
                part = parts[-1]
                if len(part.chunks) >= share or (key not in part.dirs and len(part.fds) == proc.MAX_FDS):
                    part = _Part()
                    parts.append(part)
                part.add(chunk, key, parent, name)
            for start in range(0, len(parts), len(self._writers)):
                group = parts[start : start + len(self._writers)]
                refused = self._run(group)
                if refused:
                    return refused + [c for p in parts[start + len(group) :] for c in p.chunks]
            return []
        finally:
            for part in parts:
                part.close()

    def _run(self, group: list[_Part]) -> list[WholeFile]:
        """Each part to its process at once, then every answer; returns the chunks refused."""
        answers = []
        try:
            for writer, part in zip(self._writers, group, strict=False):
                writer.send(part)
            for writer, _ in zip(self._writers, group, strict=False):
                answers.append(writer.reply())
        except (OSError, ValueError, struct.error) as exc:
            self.close()
            self._no_process = True
            raise OutputError(
                f"a file-writer process stopped ({exc}); run the same command again to resume (what arrived is kept)"
            ) from None
        refused: list[WholeFile] = []
        failure: tuple[int, int, str] | None = None
        for part, (made, outcome, failed, code, message) in zip(group, answers, strict=True):
            for index in made:
                self._done[index] = True
            if outcome == proc.REFUSED:
                self.enabled = False
                at = next(n for n, c in enumerate(part.chunks) if c.file_index == failed)
                refused += part.chunks[at:]
            elif outcome == proc.FAILED and failure is None:
                failure = (failed, code, message)
        if failure is not None:
            failed, code, message = failure
            if code == errno.EEXIST:  # the name was taken after the conflict check
                raise fs.appeared(self._shown(failed))
            raise cannot_write(self._shown(failed), OSError(code, message))
        return refused

    def _here(self, chunks: Sequence[WholeFile], parents: fs.DirCache) -> list[WholeFile]:
        for n, chunk in enumerate(chunks):
            if not self.enabled:
                return list(chunks[n:])
            index = chunk.file_index
            _, parent, name = self._destination(index, parents)
            try:
                made = fs.create_complete(parent, name, chunk.data, functools.partial(self._shown, index))
            except OSError as exc:
                raise cannot_write(self._shown(index), exc) from None
            if made:
                self._done[index] = True
            else:
                self.enabled = False
                return list(chunks[n:])
        return []

    def _started(self) -> bool:
        if not self._writers and not self._no_process:
            try:
                for _ in range(WRITERS):
                    self._writers.append(_Writer())
                log.debug("file-writer processes %s started", [w.proc.pid for w in self._writers])
            except OSError as exc:
                log.debug("no file-writer process (%s): small files are created in this one", exc)
                self.close()
                self._no_process = True
        return bool(self._writers)

    def close(self) -> None:
        """End the processes (each exits at the end of its input)."""
        writers, self._writers = self._writers, []
        for writer in writers:
            writer.close()
