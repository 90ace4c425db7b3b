"""Downloads left unfinished long ago in an output directory.

An interrupted ``get`` keeps what it verified in
``DIR/.p2pshare-partial/<share>/`` so that running it again resumes. A
download never resumed stays there for good, in a hidden directory: a
10 GB share given up at 90 % leaves 9 GB in ``~/Downloads`` that nothing
shows. Deleting it unasked would throw away what a person may still
resume, so ``get`` says it instead, once a download has been left alone
for ``FORGOTTEN_AFTER`` seconds (:func:`forgotten`, pure), after a
transfer into the same directory.

:func:`scan` reads the sizes and last writes without following symlinks
and looks at a bounded number of entries, so a directory of a million
partial files costs no more than ``MAX_ENTRIES`` stats.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from p2pshare.transfer.paths import PARTIAL_DIR_NAME

__all__ = ["FORGOTTEN_AFTER", "Leftover", "Forgotten", "forgotten", "scan"]

#: A partial download untouched this long is worth mentioning.
FORGOTTEN_AFTER = 7 * 86400.0
#: Directory entries looked at in all (share directories and their files).
MAX_ENTRIES = 4096


@dataclass(frozen=True)
class Leftover:
    """One share's partial directory: bytes held, and when it was last written."""

    name: str
    size: int
    last_write: float


@dataclass(frozen=True)
class Forgotten:
    """Downloads left alone long enough to mention: how many, how much."""

    downloads: int
    size: int


def forgotten(found: Sequence[Leftover], now: float, *, after: float = FORGOTTEN_AFTER) -> Forgotten | None:
    """The downloads untouched for ``after`` seconds, or None when there are none."""
    old = [f for f in found if now - f.last_write >= after]
    return Forgotten(len(old), sum(f.size for f in old)) if old else None


def scan(output: Path) -> list[Leftover]:
    """The share directories under ``output/.p2pshare-partial`` (blocking)."""
    budget = MAX_ENTRIES
    out: list[Leftover] = []
    try:
        tops = os.scandir(output / PARTIAL_DIR_NAME)
    except OSError:
        return []
    with tops:
        for top in tops:
            budget -= 1
            if budget < 0:
                break
            try:
                st = top.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                continue
            size, last = 0, st.st_mtime
            try:
                with os.scandir(top.path) as files:
                    for f in files:
                        budget -= 1
                        if budget < 0:
                            break
                        fst = f.stat(follow_symlinks=False)
                        if stat.S_ISREG(fst.st_mode):
                            size += fst.st_blocks * 512  # what it holds on disk (partial files are sparse)
                            last = max(last, fst.st_mtime)
            except OSError:
                continue
            out.append(Leftover(top.name, size, last))
    return out
