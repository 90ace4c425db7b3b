"""What ``share`` checks before it starts (pure but for ``os`` lookups):
a mistake in the paths or in the texts receivers are shown is one line and
exit 2 before any import is slow or any code is printed."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from p2pshare.node.errors import LocalNodeError

__all__ = ["check_paths", "check_shown_text"]


def check_paths(paths: list[Path]) -> list[Path]:
    """Fail fast, before the slow imports, on paths that cannot be shared."""
    resolved: list[Path] = []
    for p in paths:
        if not os.path.lexists(p):
            raise LocalNodeError(f"no such file or directory: {p}")
        try:
            os.stat(p)
        except OSError as exc:  # said "permission denied" (a usability review, stop 44)
            if exc.errno == errno.ELOOP:
                raise LocalNodeError(f"cannot share {p}: a loop of symbolic links") from None
            if exc.errno == errno.ENOENT:
                raise LocalNodeError(f"cannot share {p}: a symbolic link to nothing ({os.readlink(p)})") from None
        if not os.access(p, os.R_OK):
            raise LocalNodeError(f"cannot read {p}: permission denied")
        resolved.append(Path(os.path.abspath(p)))
    names = [p.name for p in resolved]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LocalNodeError(f"two paths share the name {dupes[0]!r}; rename one or share their parent")
    return resolved


def check_shown_text(name: str | None, description: str, sharer: str | None) -> None:
    """The texts receivers are shown, checked by the manifest's rules before
    a code is printed: a description with an escape sequence was refused
    only once the code was out, and the share then ended (found by a
    usability review)."""
    from p2pshare.transfer.manifest import MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, text_problem

    for flag, value, limit in (
        ("--name", name or "", MAX_NAME_CHARS),
        ("--description", description, MAX_DESCRIPTION_CHARS),
        ("--sharer", sharer or "", MAX_NAME_CHARS),
    ):
        problem = text_problem(value, limit, allow_newlines=flag == "--description")
        if problem is not None:
            raise LocalNodeError(f"{flag} {problem}")
