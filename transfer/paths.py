"""Path rules for manifest entries.

A manifest comes from a possibly malicious sharer and its paths are joined to
the receiver's output directory, so every path is checked here before any
file is touched: relative POSIX paths only, no ``..``/``.``/empty
components, no backslashes or control characters, bounded lengths, and no two
entries that would land on the same file on a case-insensitive or
Unicode-normalising filesystem.

Every check is linear in the bytes of the paths: the tree check walks a trie
of folded components instead of keeping every prefix of every path as a
string (which grew with the square of the depth: 300 paths 2,046 levels deep
took 2.7 GB). Depth is capped too, so a small manifest cannot make the
receiver create hundreds of thousands of directories.

Names that are legal but misleading (bidirectional overrides that reverse
what a person reads, invisible characters, compatibility forms such as
fullwidth dots that look like ``..``) are received, with a warning for each.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from p2pshare.errors import P2PShareError

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096
#: Files and directories in one share. What a manifest costs the receiver
#: grows with its entries (a few hundred bytes each once decoded and
#: checked), so this bounds a hostile manifest's memory; issue 12 wants
#: 100,000 small files in a share, which leaves 31,072 for their directories.
MAX_ENTRIES = 1 << 17
#: Components per path. Real trees rarely pass 30; 128 leaves room and keeps
#: a hostile manifest from creating 2,000-level directory chains.
MAX_DEPTH = 128
#: Distinct directories (explicit or implied) a manifest may make us create.
#: The scanner lists every directory it shares, so a real manifest implies
#: none it does not list: no more than ``MAX_ENTRIES``. Implied ones are the
#: hostile case (files 128 levels deep imply 127 directories each).
MAX_DIRS = MAX_ENTRIES
#: Top-level name the receiver keeps its partial files under.
PARTIAL_DIR_NAME = ".p2pshare-partial"


class PathRuleError(P2PShareError, ValueError):
    """A path breaks the rules; the message names the rule, not the path.

    Callers turn it into a local or remote error (whose path it was).
    """


#: Control characters (C0, DEL, C1), backslash, lone surrogates. A regex,
#: not a loop over characters in Python: the paths of one manifest can be tens of MB,
#: and the loop took 4.9 s for 10,000 paths of 4,095 bytes.
_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\\\\\ud800-\udfff]")


def check_component(name: str) -> None:
    """Check one path component (also used by the scanner for file names)."""
    if "/" in name:
        raise PathRuleError("path component contains '/'")
    if _BAD_CHAR.search(name):
        raise PathRuleError("path contains a control character, backslash or invalid Unicode")
    _check_part(name, may_be_long=True)


def _check_part(part: str, *, may_be_long: bool) -> None:
    """A component's rules that the checks of its whole path do not settle
    (``split_path`` knows when no part can be too long; a name with "/" is
    never empty, "." or "..", so the order of the refusals is as before)."""
    if part in ("", ".", ".."):
        raise PathRuleError(f"path component {part!r} is not allowed")
    if may_be_long and len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
        raise PathRuleError(f"path component longer than {MAX_COMPONENT_BYTES} bytes")


def check_listed_name(name: str) -> None:
    """``check_component`` for a name read from a directory, which cannot be
    empty, ``.`` or ``..`` or hold ``/``: only what such a name can break is
    looked at, the byte length only when it may be too long (the scanner
    checks every file's name before the code is printed: issue 12)."""
    if _BAD_CHAR.search(name) or len(name) > MAX_COMPONENT_BYTES // 4:
        check_component(name)


def split_path(path: str) -> tuple[str, ...]:
    """Validate a relative POSIX path and return its components."""
    if not isinstance(path, str):
        raise PathRuleError("path is not a string")
    if path.startswith("/"):
        raise PathRuleError("absolute path")
    if _BAD_CHAR.search(path):
        raise PathRuleError("path contains a control character, backslash or invalid Unicode")
    size = len(path.encode("utf-8"))
    if size > MAX_PATH_BYTES:
        raise PathRuleError(f"path longer than {MAX_PATH_BYTES} bytes")
    parts = tuple(path.split("/"))
    # ``check_component`` for each part, less what the whole path's checks
    # already settled (no "/", no bad character; no part longer than the
    # path): 100,000 paths a manifest (issue 12).
    may_be_long = size > MAX_COMPONENT_BYTES
    for part in parts:
        _check_part(part, may_be_long=may_be_long)
    # Compared as the file system may: on a case-insensitive one (macOS,
    # Windows) ".P2PShare-Partial" is our folder of unfinished files. Only a
    # name starting with "." can fold to it, so most names skip the folding.
    if is_partial_dir_name(parts[0]):
        raise PathRuleError(f"{PARTIAL_DIR_NAME} is a reserved name")
    return parts


def is_partial_dir_name(name: str) -> bool:
    """Whether ``name`` is (or folds to) our folder of unfinished downloads."""
    return name[:1] == "." and fold(name) == _PARTIAL_FOLDED


def fold(path: str) -> str:
    """The key two paths collide on: NFC-normalised and case-folded."""
    if path.isascii():
        return path.lower()  # the same for ASCII, which most names are (issue 12)
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


_PARTIAL_FOLDED = fold(PARTIAL_DIR_NAME)


def renamed(name: str, n: int) -> str:
    """``report.pdf`` → ``report (n).pdf``; ``.bashrc`` → ``.bashrc (n)`` (--rename)."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name} ({n})"
    return f"{stem} ({n}).{ext}"


class Occupied:
    """Every path a share's entries take, folded: its files, its directories
    and the directories its paths imply (a name --rename must not pick).

    Kept as a trie of folded components, not as a set of folded paths:
    a set held every prefix of every path as a string of its own, which is
    quadratic in depth (1,000 paths 127 levels deep cost ~925 MB with one
    non-ASCII character in each, before consent). The trie holds each
    component once; its nodes are the share's files and directories, which
    ``check_tree`` caps."""

    __slots__ = ("_root",)

    def __init__(self, files: Iterable[str], dirs: Iterable[str]) -> None:
        self._root: dict[str, Any] = {}
        for path in (*files, *dirs):
            node = self._root
            for part in fold(path).split("/"):
                node = node.setdefault(part, {})

    def __contains__(self, path: str) -> bool:
        """Whether ``path`` (folded) is an entry of the share or a directory one implies."""
        node: dict[str, Any] | None = self._root
        for part in fold(path).split("/"):
            node = node.get(part) if node is not None else None
            if node is None:
                return False
        return True


class _Dir:
    """A trie node: one directory, its children keyed by folded name."""

    __slots__ = ("children", "exact", "explicit")

    def __init__(self, exact: str) -> None:
        self.exact = exact  # the spelling that claimed this folded name first
        self.explicit = False  # listed in the manifest's dirs, not only implied
        self.children: dict[str, _Dir | str] = {}  # folded name -> subdir, or the exact name of a file


def check_tree(files: Iterable[str], dirs: Iterable[str]) -> int:
    """Reject duplicate or colliding entries across files and directories;
    return how many directories the entries make (listed or implied).

    Collisions are judged on ``fold()`` of each component: the same path
    spelled differently (case, Unicode normal form), a file that is also a
    directory (explicit, or implied as the parent of another entry), or an
    exact duplicate. Time and memory are linear in the total path bytes;
    depth and the number of directories are capped.
    """
    root = _Dir("")
    count = 0
    n_dirs = 0
    # The directory node of the last entry's parent path: most entries share
    # their parent with the one before (issue 12), and walking the same
    # parent again meets the same nodes and no error, so it is skipped.
    last_head, last_node = "", root
    for is_file, source in ((True, files), (False, dirs)):
        for path in source:
            count += 1
            if count > MAX_ENTRIES:
                raise PathRuleError(f"more than {MAX_ENTRIES} entries")
            parts = split_path(path)
            if len(parts) > MAX_DEPTH:
                raise PathRuleError(f"path deeper than {MAX_DEPTH} levels")
            name = parts[-1]
            head = path[: len(path) - len(name) - 1] if len(parts) > 1 else ""
            if head != last_head:
                node = root
                for part in parts[:-1]:
                    node, made = _enter(node, part)
                    n_dirs += made
                    if n_dirs > MAX_DIRS:
                        raise PathRuleError(f"more than {MAX_DIRS} directories")
                last_head, last_node = head, node
            node = last_node
            if is_file:
                key = fold(name)
                child = node.children.get(key)
                if child is None:
                    node.children[key] = name
                elif isinstance(child, str) and child == name:
                    raise PathRuleError("duplicate path")
                elif (child if isinstance(child, str) else child.exact) != name:
                    raise PathRuleError("two entries differ only in case or Unicode form")
                else:
                    raise PathRuleError("a path is both a file and a directory")
                continue
            child, made = _enter(node, name)
            n_dirs += made
            if n_dirs > MAX_DIRS:
                raise PathRuleError(f"more than {MAX_DIRS} directories")
            if child.explicit:  # an explicit directory, listed twice
                raise PathRuleError("duplicate path")
            child.explicit = True
    return n_dirs


def _enter(node: _Dir, part: str) -> tuple[_Dir, int]:
    """The subdirectory ``part`` of ``node``, made if new (then 1, else 0)."""
    key = fold(part)
    child = node.children.get(key)
    if child is None:
        child = node.children[key] = _Dir(part)
        return child, 1
    if isinstance(child, str):
        if child != part:
            raise PathRuleError("two entries differ only in case or Unicode form")
        raise PathRuleError("a path is both a file and a directory")
    if child.exact != part:
        raise PathRuleError("two entries differ only in case or Unicode form")
    return child, 0


#: Characters that change how a name reads without being visible: the
#: bidirectional embeddings, overrides and isolates (``invoice\u202efdp.exe``
#: shows as "invoiceexe.pdf"), marks, and zero-width characters.
_INVISIBLE = frozenset(
    "\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)


def name_warnings(path: str) -> list[str]:
    """Why a (valid) path may mislead a person, one plain sentence each; [] when it reads as it is.

    Such names are legal on every filesystem we write to, so they are
    received, but the receiver is told: a bidi override can make
    ``invoice\u202efdp.exe`` look like a PDF, and fullwidth ``．．`` looks
    like ``..``.
    """
    if path.isascii():
        return []  # no invisible character, and NFKC is NFC (issue 12: most names, fast)
    out: list[str] = []
    if any(ch in _INVISIBLE for ch in path):
        out.append(
            f"{path.encode('unicode_escape').decode('ascii')!s}: the name holds invisible or "
            "direction-changing characters, so it may not read as it is"
        )
    elif unicodedata.normalize("NFKC", path) != unicodedata.normalize("NFC", path):
        out.append(
            f"{path.encode('unicode_escape').decode('ascii')!s}: the name uses lookalike "
            f"characters (it reads like {unicodedata.normalize('NFKC', path)!r})"
        )
    return out
