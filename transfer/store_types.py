"""The values ``Store`` takes and gives: what to do on a conflict, what a
resume found, and a chunk between the two write stages."""

from __future__ import annotations

import enum
import hashlib
import mmap
from dataclasses import dataclass, field

from p2pshare.transfer import ranges

__all__ = ["MAX_RENAMES", "Conflict", "ResumePlan", "Verified"]


class Conflict(enum.Enum):
    """What to do when a file of the share exists with other content (``get``'s flags)."""

    REFUSE = "refuse"  # the default: never lose a file the receiver had
    OVERWRITE = "overwrite"  # --overwrite: replace it, atomically, once the new one verified
    RENAME = "rename"  # --rename: keep it; the new one is "name (1).ext"


#: Candidates tried for a renamed file before giving up.
MAX_RENAMES = 1000


@dataclass(frozen=True)
class ResumePlan:
    """What ``Store.prepare`` found: what to ask for and what is already here."""

    missing: list[ranges.Range]
    already_have_bytes: int
    completed: list[str]  # files finished during prepare (already present/empty/resumed)


@dataclass(frozen=True)
class Verified:
    """A chunk that passed ``Store.verify_chunk``, on its way to ``write_verified``."""

    file_index: int
    chunk_index: int
    data: bytes | memoryview = field(repr=False)
    #: Set on the chunk that completes its file: the whole-file hash so far.
    final: tuple[hashlib._Hash, int] | None = field(default=None, repr=False)
    #: The aligned buffer ``data`` is a view of (``Store.block_for``): written
    #: around the page cache, then given back to the pool.
    block: mmap.mmap | None = field(default=None, repr=False)
