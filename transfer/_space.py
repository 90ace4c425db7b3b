"""Does a share fit: the bytes it still needs in an output directory (blocking I/O).

Separate from the store's writing: ``get`` asks it before anything is
created (the consent prompt shows it, and a share that cannot fit is
refused before the first byte is written).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from p2pshare.transfer import _fsutil as fs
from p2pshare.transfer.errors import NoSpaceError
from p2pshare.transfer.manifest import Manifest
from p2pshare.transfer.paths import PARTIAL_DIR_NAME

#: What a new directory takes on disk (one block of most file systems).
DIR_BYTES = 4096


@dataclass(frozen=True)
class Need:
    """What a share takes in an output directory, before anything is written."""

    #: Bytes it still needs on disk: the files' bytes not here, and a block
    #: per folder (unless every file is already in place).
    bytes: int
    #: The files' bytes already here: files in place, and what earlier runs'
    #: partial files hold (a resume: "Needs 300 MiB" alone did not say that
    #: 700 MiB of the share were on disk).
    here: int = 0


def needed_bytes(root: int, share_dir_name: str, manifest: Manifest, present: list[bool]) -> Need:
    """Every file not already in place, less what its partial file already
    holds (resumed data is reused in place)."""
    part_dir = fs.open_dir(root, (PARTIAL_DIR_NAME, share_dir_name), create=False, shown=PARTIAL_DIR_NAME)
    needed = 0
    here = 0
    try:
        held_names = frozenset(os.listdir(part_dir)) if part_dir is not None else frozenset()
        for i, entry in enumerate(manifest.files):
            if present[i]:
                here += entry.size
                continue
            st = fs.lstat_at(part_dir, str(i)) if part_dir is not None and str(i) in held_names else None
            held = min(st.st_size, entry.size) if st is not None and fs.is_regular(st) else 0
            needed += entry.size - held
            here += held
    finally:
        if part_dir is not None:
            os.close(part_dir)
    # Each directory takes a block: 130,938 of them, made by a share of empty
    # files, took 512 MiB that "Needs 0 B" had not counted (a hostile-peer review).
    return Need(needed + DIR_BYTES * manifest.dir_count if not all(present) else needed, here)


def check_space(root: int, needed: int, output_dir: Path) -> None:
    """Refuse, before anything is written, a share that cannot fit.

    Free: what an unprivileged writer may use. A share declaring terabytes
    is refused here, not after filling the disk.
    """
    vfs = os.fstatvfs(root)
    free = vfs.f_bavail * vfs.f_frsize
    if needed > free:
        raise NoSpaceError(
            f"the share does not fit in {output_dir}: it needs {fs.human_size(needed)}, "
            f"{fs.human_size(free)} is free; free some space or choose another directory with -o"
        )
