"""Path rules for manifest entries.

A manifest comes from a possibly malicious sharer and its paths are joined to
the receiver's output directory, so every path is checked here before any
file is touched: relative POSIX paths only, no ``..``/``.``/empty
components, no backslashes or control characters, bounded lengths, and no two
entries that would land on the same file on a case-insensitive or
Unicode-normalising filesystem.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from p2pshare.errors import P2PShareError

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_ENTRIES = 1_000_000
#: Top-level name the receiver keeps its partial files under.
PARTIAL_DIR_NAME = ".p2pshare-partial"


class PathRuleError(P2PShareError, ValueError):
    """A path breaks the rules; the message names the rule, not the path.

    Callers turn it into a local or remote error (whose path it was).
    """


def _bad_char(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code < 0xA0 or ch == "\\" or 0xD800 <= code < 0xE000


def check_component(name: str) -> None:
    """Check one path component (also used by the scanner for file names)."""
    if name in ("", ".", ".."):
        raise PathRuleError(f"path component {name!r} is not allowed")
    if "/" in name:
        raise PathRuleError("path component contains '/'")
    if any(_bad_char(ch) for ch in name):
        raise PathRuleError("path contains a control character, backslash or invalid Unicode")
    if len(name.encode("utf-8")) > MAX_COMPONENT_BYTES:
        raise PathRuleError(f"path component longer than {MAX_COMPONENT_BYTES} bytes")


def split_path(path: str) -> tuple[str, ...]:
    """Validate a relative POSIX path and return its components."""
    if not isinstance(path, str):
        raise PathRuleError("path is not a string")
    if path.startswith("/"):
        raise PathRuleError("absolute path")
    if any(_bad_char(ch) for ch in path):
        raise PathRuleError("path contains a control character, backslash or invalid Unicode")
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        raise PathRuleError(f"path longer than {MAX_PATH_BYTES} bytes")
    parts = tuple(path.split("/"))
    for part in parts:
        check_component(part)
    if parts[0] == PARTIAL_DIR_NAME:
        raise PathRuleError(f"{PARTIAL_DIR_NAME} is a reserved name")
    return parts


def fold(path: str) -> str:
    """The key two paths collide on: NFC-normalised and case-folded."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


def check_tree(files: Iterable[str], dirs: Iterable[str]) -> None:
    """Reject duplicate or colliding entries across files and directories.

    Collisions are judged on ``fold()``: the same path spelled differently
    (case, Unicode normal form), a file that is also a directory (explicit,
    or implied as the parent of another entry), or an exact duplicate.
    """
    # folded key -> (exact spelling, is_file)
    seen: dict[str, tuple[str, bool]] = {}
    count = 0

    def claim(exact: str, is_file: bool, explicit: bool) -> None:
        key = fold(exact)
        prev = seen.get(key)
        if prev is None:
            seen[key] = (exact, is_file)
            return
        prev_exact, prev_is_file = prev
        if prev_exact != exact:
            raise PathRuleError("two entries differ only in case or Unicode form")
        if is_file or prev_is_file:
            if is_file and prev_is_file:
                raise PathRuleError("duplicate path")
            raise PathRuleError("a path is both a file and a directory")
        if explicit and explicit_dirs.get(exact, False):
            raise PathRuleError("duplicate path")

    explicit_dirs: dict[str, bool] = {}
    limit = MAX_ENTRIES
    for is_file, source in ((True, files), (False, dirs)):
        for path in source:
            count += 1
            if count > limit:
                raise PathRuleError(f"more than {limit} entries")
            parts = split_path(path)
            for i in range(1, len(parts)):
                claim("/".join(parts[:i]), False, False)
            claim(path, is_file, not is_file)
            if not is_file:
                explicit_dirs[path] = True
