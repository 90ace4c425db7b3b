"""The file-writer process: creates one-chunk files whole, outside the GIL
of the receiving process (issue 12: many small files).

Run by ``_writer_client`` as ``python -I -S _file_writer.py FD``, with only
the standard library: nothing of p2pshare, no site packages. It knows no
paths. The receiver sends, over the ``SOCK_SEQPACKET`` socket ``FD``, the
directories as open file descriptors it made and checked itself
(``SCM_RIGHTS``), and per file that directory's number, a single name
component and the bytes; the process creates each file complete under its
name, never replacing one (:func:`create_whole`, which the receiver's
``_fsutil.create_complete`` calls too), and answers each batch with the files
made and the first error. On end of input (the receiver closed the socket or
died) it exits; it ignores SIGINT, which the terminal sends to the whole
process group, so a file is never left half-made by Ctrl-C.

Wire (all integers big-endian). At start the process sends ``H`` (ready).
Receiver to process, one batch:
  header message: ``B`` u32 batch, u32 directories, u32 files, u32 body
  bytes, with the batch's directories attached as descriptors (at most
  :data:`MAX_FDS`; those of the previous batch are closed); then body
  messages of :data:`PIECE` bytes (the last one shorter), the files one
  after the other: u32 directory (its place among the batch's), u32 file
  index, u16 name length, u32 data length, name, data.
Process to receiver, one reply per batch: a message ``R`` u32 batch, u32
  files made, u8 outcome, u32 failed file index, u32 errno, u16 message
  length, message; then the made file indexes (u32 each) in messages of at
  most :data:`PIECE` bytes.
  Outcome 0: all made; 1: the file system refuses unnamed inodes (nothing
  more is made; the receiver writes the rest another way); 2: an error
  (``errno`` and message) at the failed file; the files after it are not
  made.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct
import sys

HEADER = struct.Struct(">cIIII")
FILE = struct.Struct(">IIHI")
REPLY = struct.Struct(">cIIBIIH")
#: Directories (descriptors) per batch: the receiver holds them open while
#: it sends (the kernel takes at most 253 per message).
MAX_FDS = 64
#: Body bytes per message (within the socket's default buffer).
PIECE = 64 * 1024
#: Bytes per ``pwrite`` of received data, here and in the receiver (which
#: imports it from here through ``_fsutil``, where the measurements are).
WRITE_PIECE = 16 * 1024
READY = b"H"
#: Outcomes.
ALL_MADE, REFUSED, FAILED = 0, 1, 2


def recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    """``n`` bytes sent in messages of :data:`PIECE` bytes; None at end of input."""
    parts: list[bytes] = []
    while n > 0:
        data = sock.recv(PIECE)
        if not data or len(data) > n:
            return None
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def send_pieces(sock: socket.socket, data: bytes | memoryview) -> None:
    with memoryview(data) as view:
        for start in range(0, len(view), PIECE):
            sock.sendall(view[start : start + PIECE])


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` in :data:`WRITE_PIECE` pieces."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view[:WRITE_PIECE], offset)
        view = view[n:]
        offset += n


def create_whole(dir_fd: int, name: str, data: bytes | memoryview) -> bool:
    """Create ``name`` complete in ``dir_fd``, never replacing a file: an
    unnamed inode (``O_TMPFILE``) is written, then linked under its name
    (``linkat`` fails with ``FileExistsError`` on an existing name,
    atomically; a crash before the link leaves nothing). False, with
    nothing created, where unnamed inodes cannot be made or linked (no
    ``O_TMPFILE`` in the kernel or the file system: EOPNOTSUPP, or EISDIR on
    old kernels; no ``/proc/self/fd``). Errors writing the data are raised."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag:
        return False
    try:
        fd = os.open(".", os.O_WRONLY | flag | os.O_CLOEXEC, 0o666, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        pwrite_all(fd, data, 0)
        try:
            os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
        except FileExistsError:
            raise
        except OSError:
            return False
    finally:
        os.close(fd)
    return True


def serve(sock: socket.socket) -> None:
    dirs: list[int] = []
    enabled = True
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, HEADER.size, MAX_FDS)
        except ConnectionError:
            return
        if not msg:
            return
        for fd in dirs:
            os.close(fd)
        dirs = fds
        _kind, batch, ndirs, count, size = HEADER.unpack(msg)
        if len(fds) != ndirs:
            raise SystemExit(f"file writer: {len(fds)} descriptors for {ndirs} directories")
        body = recv_exactly(sock, size)
        if body is None:
            return
        made: list[int] = []
        outcome, failed, code, text = ALL_MADE, 0, 0, ""
        view = memoryview(body)
        pos = 0
        for _ in range(count):
            d, index, name_len, data_len = FILE.unpack_from(view, pos)
            pos += FILE.size
            name = bytes(view[pos : pos + name_len]).decode("utf-8", "surrogateescape")
            pos += name_len
            data = view[pos : pos + data_len]
            pos += data_len
            if outcome != ALL_MADE:
                continue
            if not enabled:
                outcome, failed = REFUSED, index
                continue
            if d >= len(dirs) or "/" in name or name in ("", ".", ".."):
                outcome, failed, code, text = FAILED, index, errno.EINVAL, "no such directory or not a single name"
                continue
            try:
                if create_whole(dirs[d], name, data):
                    made.append(index)
                else:
                    enabled = False
                    outcome, failed = REFUSED, index
            except OSError as exc:
                outcome, failed, code, text = FAILED, index, exc.errno or 0, exc.strerror or str(exc)
        message = text.encode("utf-8", "replace")[:1000]
        sock.sendall(REPLY.pack(b"R", batch, len(made), outcome, failed, code, len(message)) + message)
        send_pieces(sock, struct.pack(f">{len(made)}I", *made))


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(sys.argv[1]))
    with sock:
        sock.sendall(READY)
        serve(sock)


if __name__ == "__main__":
    main()
