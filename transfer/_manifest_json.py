"""The pieces of a received manifest's JSON that are read token by token:
the directory list, and the memory the decoded paths take.

Split from ``manifest`` (one job: bounding what a sharer's document costs
before it is held). Both guard against the same trick: a Python ``str``
takes 4 bytes per character once one character of it is outside the
BMP's first 65,536, so bytes on the wire are not the measure of memory.
A hostile-peer review found a single 39 MiB directory string with one
emoji decoded whole (416 MB peak, before the path-length rule could
refuse it), and a valid 30 MB manifest of 8,000 4 KiB directory paths,
each with an emoji, held at 316 MB, past the 200 MB that every manifest
attack is documented to stay under.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from p2pshare.errors import P2PShareError
from p2pshare.transfer import paths

__all__ = ["ManifestError", "loads", "parse_dirs", "PathBudget", "MAX_PATH_MEMORY"]

#: What the decoded paths of one manifest (files and directories) may take
#: as Python strings. 100,000 files named like a photo library take ~8 MB;
#: 131,072 paths of 120 characters with an emoji in each ~64 MB.
MAX_PATH_MEMORY = 64 << 20
#: One directory path as a JSON string token: 4,096 bytes, at most 2 each
#: escaped, and the quotes (the rule file entries' paths follow too).
MAX_DIR_TOKEN = 2 * paths.MAX_PATH_BYTES + 2

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # one JSON string token
_PLAIN = re.compile(rb'"[^"\\\x00-\x1f]*"')  # one that needs no JSON decoder


class ManifestError(P2PShareError, ValueError):
    """The manifest is malformed or unsafe; the message says which rule.

    Neither local nor remote by itself: the receiver turns it into a
    ``ProtocolError`` (the peer's manifest), the scanner into a ``SourceError``.
    """


def loads(data: bytes | bytearray) -> Any:
    """``json.loads``, with every failure a ``ManifestError``."""
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ManifestError("manifest is not valid JSON") from None


class PathBudget:
    """The memory the manifest's decoded paths take, refused past
    :data:`MAX_PATH_MEMORY` as each one is decoded."""

    __slots__ = ("used",)

    def __init__(self) -> None:
        self.used = 0

    def add(self, path: str) -> None:
        self.used += sys.getsizeof(path)
        if self.used > MAX_PATH_MEMORY:
            raise ManifestError(f"the manifest's paths take more than {MAX_PATH_MEMORY >> 20} MiB of memory")


def parse_dirs(data: bytes | bytearray, start: int, end: int, budget: PathBudget) -> list[str]:
    """The directory paths between the dirs array's brackets, one string
    token at a time: each token is bounded before it is decoded, the count
    before the next one is read, the memory as each is made (``json.loads``
    of the whole array made every string at once, at up to 4 bytes a
    character, before any cap was known)."""
    dirs: list[str] = []
    pos = start
    while pos < end:
        if dirs:
            if data[pos : pos + 1] != b",":
                raise ManifestError("directory path is not a string")
            pos += 1
        token = _STRING.match(data, pos, end)
        if token is None:
            raise ManifestError("directory path is not a string")
        if token.end() - pos > MAX_DIR_TOKEN:
            raise ManifestError(f"unsafe path in manifest: path longer than {paths.MAX_PATH_BYTES} bytes")
        if len(dirs) >= paths.MAX_ENTRIES:
            raise ManifestError("too many entries")
        if _PLAIN.fullmatch(data, pos, token.end()):
            try:
                path = bytes(data[pos + 1 : token.end() - 1]).decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                raise ManifestError("manifest is not valid JSON") from None
        else:
            path = loads(data[pos : token.end()])
        budget.add(path)
        dirs.append(path)
        pos = token.end()
    return dirs
