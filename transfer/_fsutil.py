"""Symlink-proof file system helpers for writing under an output directory.

Every path below the output directory is reached one component at a time
through directory file descriptors opened with ``O_NOFOLLOW``, so a symlink
(planted before or during the transfer) can never redirect a write outside
the output directory, and a non-directory in the way is an error, not a
surprise. On Linux (5.6 and later) a directory that exists is opened with
one ``openat2`` call that makes the kernel walk the path under the same
rules (``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS``): a sharer whose files
alternate between deep directories made the walk reopen every component
for every file (127 levels: ~0.5 ms a file, a minute and more for the
largest manifest, found in a hostile-peer review).
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import sys
from collections.abc import Callable

from p2pshare.transfer import _file_writer
from p2pshare.transfer.errors import OutputError, cannot_write

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_root(path: os.PathLike[str] | str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise OutputError(f"cannot open output directory {os.fspath(path)}: {exc.strerror or exc}") from None


def open_dir(root_fd: int, parts: tuple[str, ...], *, create: bool, shown: str, root_shown: str = "") -> int | None:
    """Open ``root/parts...`` as a directory fd, creating missing components.

    Returns None when a component is missing and ``create`` is False.
    ``shown`` is the path used in error messages; ``root_shown`` the root's,
    for a folder that refuses a new one in it: named, not the root (the
    person looked at the output directory while ``OUT/tree`` refused).
    """
    if parts:
        fd, err = _beneath.open_dir(root_fd, parts)
        if fd is not None:
            return fd
        if err == errno.ENOENT and not create:
            return None
        if err in (errno.ELOOP, errno.ENOTDIR, errno.EXDEV):
            raise OutputError(f"refusing to write {shown}: a symlink or non-directory is in the way")
        # Missing parts to create, or anything else: the walk below says it.
    fd = os.dup(root_fd)
    try:
        for depth, name in enumerate(parts):
            if create:
                try:
                    os.mkdir(name, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                except OSError as exc:
                    inside = os.path.join(root_shown, *parts[:depth]) if root_shown or depth else "the output directory"
                    raise cannot_write(f"into {inside}", exc) from None
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if create:
                    raise OutputError(f"cannot create directory {shown}: it vanished") from None
                os.close(fd)
                return None
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise OutputError(f"refusing to write {shown}: a symlink or non-directory is in the way") from None
                raise OutputError(f"cannot open directory for {shown}: {exc.strerror or exc}") from None
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


class _Beneath:
    """``openat2(2)`` with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`` through
    ``ctypes`` (Python has no binding): loaded on first use, and off for
    good where the kernel or a sandbox refuses it (the walk then does it)."""

    _SYS_OPENAT2 = 437  # the same on every Linux architecture
    _RESOLVE = 0x02 | 0x04 | 0x08  # NO_MAGICLINKS | NO_SYMLINKS | BENEATH

    def __init__(self) -> None:
        self._call: Callable[..., int] | None = None
        self._how: object = None
        self.usable = sys.platform == "linux"

    def open_dir(self, dir_fd: int, parts: tuple[str, ...]) -> tuple[int | None, int]:
        """The directory ``parts`` under ``dir_fd``, opened with ``_DIR_FLAGS``:
        (fd, 0); (None, errno) when the kernel refused the path; (None, 0)
        when openat2 cannot be used here."""
        if not self.usable:
            return None, 0
        if self._call is None:
            self._load()
        assert self._call is not None
        fd = self._call(self._SYS_OPENAT2, dir_fd, os.fsencode("/".join(parts)), self._how, 24)
        if fd >= 0:
            return fd, 0
        import ctypes

        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.E2BIG):
            self.usable = False  # an old kernel, a seccomp filter: the walk from now on
            return None, 0
        return None, err

    def _load(self) -> None:
        import ctypes

        class OpenHow(ctypes.Structure):
            _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]

        call = ctypes.CDLL(None, use_errno=True).syscall
        call.restype = ctypes.c_long
        call.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
        self._how = ctypes.pointer(OpenHow(_DIR_FLAGS, 0, self._RESOLVE))
        self._call = call


_beneath = _Beneath()


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def is_regular(st: os.stat_result | None) -> bool:
    return st is not None and stat.S_ISREG(st.st_mode)


@functools.cache
def _us() -> tuple[int, frozenset[int]]:
    return os.geteuid(), frozenset((os.getegid(), *os.getgroups()))


def may_read(st: os.stat_result) -> bool:
    """Whether the mode bits let us read a file (no system call: a share of
    100,000 files lists them before its code). False is checked again with
    ``os.access``, which also knows ACLs."""
    uid, gids = _us()
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IRUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IRGRP)
    return bool(st.st_mode & stat.S_IROTH)


def not_ours(st: os.stat_result) -> bool:
    """A partial file with another name too (a hard link). Written as ours,
    it rewrote the file it links: a hostile-peer review (stop 44) linked a
    file outside the output directory into the partial directory, and
    ``get`` truncated it, wrote the share into it and placed it as the
    "verified" file, still shared with whoever linked it. (Not the owner:
    root-squashed NFS and vfat mounts give our own files another one.)"""
    return st.st_nlink != 1


def open_file(dir_fd: int, name: str, flags: int) -> int:
    return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=dir_fd)


def open_part(dir_fd: int, name: str, shown: Callable[[], str]) -> int:
    """Open (create) a partial file to write, refusing one :func:`not_ours`
    (linked in after the scan removed such a name)."""
    fd = open_file(dir_fd, name, os.O_RDWR | os.O_CREAT)
    if not_ours(os.fstat(fd)):
        os.close(fd)
        raise OutputError(f"{shown()} is linked to another file; remove it")
    return fd


def appeared(shown: str) -> OutputError:
    """A file made at a final name after the conflict check (another
    program, another ``get``): never replaced, and the person is told how
    to keep both (a usability review, stop 44: a bare refusal)."""
    return OutputError(
        f"refusing to overwrite {shown}: another file appeared there while receiving; "
        "run the same command again with --rename to keep both"
    )


def move_noreplace(src_dir: int, src: str, dst_dir: int, dst: str, shown: Callable[[], str]) -> None:
    """Move a file without ever replacing an existing one.

    A hard link fails atomically with EEXIST when the target exists; file
    systems without hard links fall back to check-then-rename. ``shown``
    makes the path a person sees, only for an error: building it for every
    file was ~4 % of a 100,000-small-file receiver's Python time.
    """
    try:
        os.link(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir, follow_symlinks=False)
    except FileExistsError:
        raise appeared(shown()) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise OutputError(f"cannot create {shown()}: {exc.strerror or exc}") from None
        if lstat_at(dst_dir, dst) is not None:
            raise appeared(shown()) from None
        try:
            os.rename(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
        except OSError as exc2:
            raise OutputError(f"cannot create {shown()}: {exc2.strerror or exc2}") from None
        return
    os.unlink(src, dir_fd=src_dir)


def create_complete(dir_fd: int, name: str, data: bytes | memoryview, shown: Callable[[], str]) -> bool:
    """Create ``name`` in ``dir_fd`` holding ``data``, never replacing a file,
    and visible only once complete: an unnamed inode (``O_TMPFILE``) is
    written, then linked under its name (``linkat`` fails with EEXIST on an
    existing name, atomically). A crash before the link leaves nothing.

    False, with nothing created, where the unnamed inode cannot be made or
    linked (no ``O_TMPFILE`` in the kernel or the file system: EOPNOTSUPP,
    or EISDIR on old kernels; no ``/proc/self/fd``): the caller then writes
    a named partial file and moves it, and that route reports a directory
    that really cannot be written. Errors writing the data are raised.
    """
    try:
        return create_whole(dir_fd, name, data)  # the steps the file-writer processes take too
    except FileExistsError:
        raise appeared(shown()) from None


#: Bytes per ``pwrite`` of received data. The page cache takes a folio as
#: large as each write (ext4, Linux 6.x): a 1 MiB write gets a 1 MiB folio,
#: which comes from the allocator's large free blocks -- on a VM that hands
#: freed memory back to its host (free page reporting, as on this project's
#: machines) exactly the memory the host took back, whose first touch cost
#: ~2 s of kernel CPU per GiB received. Folios of 16 KiB come from the
#: per-CPU lists of recently freed pages, such as the socket buffers the
#: same bytes just passed through. Measured on a 1 GiB ``get`` (issue 12):
#: sys time 2.95-3.11 s with 1 MiB writes, 0.79-1.35 s with 16 KiB ones;
#: the cost elsewhere is 64 system calls per MiB (~0.1 s per GiB).
#: magic-wormhole writes 16 KiB records and never paid it.
#: The value and the write loop live in ``_file_writer`` (it imports
#: nothing of p2pshare), so that its processes write the same way.
WRITE_PIECE = _file_writer.WRITE_PIECE
pwrite_all = _file_writer.pwrite_all
create_whole = _file_writer.create_whole


def pread_exact(fd: int, length: int, offset: int) -> bytes:
    """Read up to ``length`` bytes (fewer only at end of file)."""
    data = os.pread(fd, length, offset)
    while len(data) < length:
        more = os.pread(fd, length - len(data), offset + len(data))
        if not more:
            break
        data += more
    return data


class DirCache:
    """Directories under a root, the last one kept open (a manifest's files
    come sorted, so a directory's files are together). Reading (``assess``),
    the ones found missing are remembered (nothing below them exists
    either): a 100,000-file share cost three system calls per file. With
    ``create`` (where finished files go), missing ones are made instead."""

    def __init__(self, root: int, *, create: bool = False, root_shown: str = "") -> None:
        self._root = root
        self._create = create
        self._root_shown = root_shown
        self._last: tuple[tuple[str, ...], int | None] | None = None
        self._missing: set[tuple[str, ...]] = set()

    def get(self, parts: tuple[str, ...], shown: str) -> int | None:
        """The directory's fd; None only without ``create``, when it is missing."""
        if self._last is not None and self._last[0] == parts:
            return self._last[1]
        if self._missing and any(parts[:n] in self._missing for n in range(1, len(parts) + 1)):
            return None
        self.close()
        fd = open_dir(self._root, parts, create=self._create, shown=shown, root_shown=self._root_shown)
        if fd is None and not _beneath.usable:
            # Only for the walk: openat2 finds a missing directory in one call,
            # and checking every prefix here costs the square of the depth.
            self._missing.add(parts)
        self._last = (parts, fd)
        return fd

    def close(self) -> None:
        if self._last is not None and self._last[1] is not None:
            os.close(self._last[1])
        self._last = None


def human_size(n: int) -> str:
    """Bytes for a person, in one unit family (binary, like the progress display)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def check_dir(root: int, path: str, shown: str) -> None:
    """Refuse a manifest directory ``path`` under ``root`` where a file is in
    its way (nothing there, or a directory, is fine); ``shown``: its name for people."""
    parts = tuple(path.split("/"))
    parent = open_dir(root, parts[:-1], create=False, shown=path)
    if parent is None:
        return
    try:
        st = lstat_at(parent, parts[-1])
        if st is not None and not stat.S_ISDIR(st.st_mode):
            raise OutputError(f"refusing to overwrite {shown}: a file is in the way of a directory")
    finally:
        os.close(parent)
