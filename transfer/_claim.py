"""One receiver at a time per share and output directory (blocking I/O).

Two ``get``s of the same share into the same directory write the same
partial files (``OUTPUT/.p2pshare-partial/<share_id hex>/``): each moves
files the other is still checking out of its reach, and one of them ends
with a misleading "cannot create …: No such file or directory". The store
therefore holds its share's partial directory with an exclusive ``flock``
for as long as it is open; a second store of that share fails at once
with :class:`OutputBusyError`, before it asks anything or writes a byte.
Different shares have different partial directories and still run side by
side into one directory (two downloads into ``~/Downloads``).

The lock belongs to the directory's inode, so it is checked after taking
it that the names still lead to that inode: a finishing receiver removes
an empty partial directory while it holds it, and a store that opened the
old one just before would otherwise write into a directory no name leads
to (its files lost). Then it opens the names again. ``flock`` is released
by the kernel when the process dies, so a killed ``get`` never leaves a
stale lock behind. A file system that cannot lock at all (ENOLCK on some
network ones) is written unguarded, as before, rather than refused.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from p2pshare.transfer import _fsutil as fs
from p2pshare.transfer.errors import OutputBusyError, OutputError

__all__ = ["claim_partial"]

#: Attempts to open and lock the partial directory while other receivers
#: remove and recreate it (each attempt that loses is one finishing run).
CLAIM_TRIES = 8


def claim_partial(root: int, names: tuple[str, str], output_dir: Path, *, create: bool) -> tuple[int, int] | None:
    """Open ``root/names[0]/names[1]`` (the partial root and the share's
    directory) and lock the latter exclusively: its fds, the share's one
    locked. None if a component is missing and ``create`` is False."""
    top, share = names
    for _ in range(CLAIM_TRIES):
        parent: int | None = None
        held: int | None = None
        try:
            parent = fs.open_dir(root, (top,), create=create, shown=top)
            if parent is None:
                return None
            held = fs.open_dir(parent, (share,), create=create, shown=f"{top}/{share}")
            if held is None:
                os.close(parent)
                return None
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputBusyError(
                    f"another p2pshare get is receiving this share into {output_dir} now; "
                    "wait for it to finish, or choose another -o"
                ) from None
            except OSError:
                pass  # a file system that cannot lock (some network ones): unguarded, as before
            if _still_named(root, top, parent) and _still_named(parent, share, held):
                return parent, held
        except FileNotFoundError:
            pass  # created in a directory another receiver had just removed: again
        except BaseException:
            _close(held, parent)
            raise
        _close(held, parent)
    raise OutputError(f"cannot hold {top}/{share} in {output_dir}: other receivers keep removing it")


def _close(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            os.close(fd)


def _still_named(dir_fd: int, name: str, fd: int) -> bool:
    """``dir_fd/name`` is (still) the directory open as ``fd``."""
    st = fs.lstat_at(dir_fd, name)
    mine = os.fstat(fd)
    return st is not None and (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
