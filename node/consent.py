"""Whether ``get`` may write a share: pure decisions, no I/O.

Before this, ``get`` wrote whatever a code named without showing it, and a
share larger than the disk filled it and then failed. The receiver now sees
what is coming (name, sharer, file count, total size, the first files) and
says yes or no before any byte is written; a share that cannot fit is
refused first, whatever the flags say, because no answer makes it fit.

Everything here takes plain values (a :class:`ShareSummary`, the free bytes,
the flags) and returns a :class:`Decision` or text, so every case is a unit
test; ``cmd_get`` only measures the disk, prints and reads the answer.

When standard input is not a terminal and ``--yes`` was not given, ``get``
proceeds as before (scripts, pipes and CI keep working) and says so on
stderr; only a person at a terminal is asked, on the terminal itself when
stderr is redirected (a question written into a log was never seen, and
``get`` waited for its answer). The fit check applies always.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from p2pshare.node.progress import format_bytes, format_count
from p2pshare.transfer.errors import sanitize_text

__all__ = [
    "SHOWN_FILES",
    "SHOWN_HIDDEN",
    "Decision",
    "ShareSummary",
    "decide",
    "describe",
    "hidden_tops",
    "hidden_warning",
    "landing",
    "no_space_message",
    "summary_of",
    "parse_answer",
    "prompt_text",
]

#: Files listed before the question; the rest are counted ("… and 37 more").
SHOWN_FILES = 5
#: Hidden names (``.bash_profile``, ``.ssh/``) at the top of the output
#: directory named in the warning before the question; the rest are counted.
SHOWN_HIDDEN = 8
#: Lines of the sharer's description shown before the question, and their
#: length: with "  > " in front, one row of an 80-column terminal.
DESCRIPTION_LINES = 5
DESCRIPTION_CHARS = 75


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class ShareSummary:
    """What a person needs to decide: from the verified manifest."""

    name: str
    sharer: str | None
    #: (path, size) of the first files in manifest order: at most what is shown
    #: (a manifest may list a million files; only a few are ever printed).
    files: tuple[tuple[str, int], ...]
    file_count: int
    total_bytes: int
    #: Bytes this share still needs on disk (less what a partial download holds).
    needed_bytes: int
    #: The sharer's ``--description``, already made safe to print ("" for none).
    description: str = ""
    #: Hidden entries the share puts at the top of the output directory, as
    #: shown (at most :data:`SHOWN_HIDDEN`), and how many there are in all.
    hidden: tuple[str, ...] = ()
    hidden_count: int = 0
    #: Directories the share makes: a manifest of 1,031 empty files 128 levels
    #: deep showed "1031 files, 0 B" and made 130,938 (a hostile-peer review).
    dir_count: int = 0
    #: The share's file bytes already here (files in place, an earlier run's
    #: partial files): a resume said "Needs 300 MiB" and not that 700 MiB were here.
    here_bytes: int = 0


class Decision(enum.Enum):
    PROCEED = "proceed"  # --yes, or nobody at a terminal to ask
    ASK = "ask"  # a person at a terminal: y/N
    NO_SPACE = "no-space"  # refused: it cannot fit, whatever the answer


def decide(summary: ShareSummary, free_bytes: int | None, *, assume_yes: bool, interactive: bool) -> Decision:
    """The one rule: no fit, no write; else ask a person unless ``--yes``.

    ``free_bytes`` is None when the free space could not be measured (then
    the store's own check, at open, still refuses a share that cannot fit).
    """
    if free_bytes is not None and summary.needed_bytes > free_bytes:
        return Decision.NO_SPACE
    if assume_yes or not interactive:
        return Decision.PROCEED
    return Decision.ASK


def describe(summary: ShareSummary, free_bytes: int | None, shown: int = SHOWN_FILES) -> list[str]:
    # ``shown`` beyond SHOWN_FILES lists no more: the summary keeps only that many.
    """The lines shown before the question (or before receiving, without one)."""
    by = f" from {summary.sharer}" if summary.sharer else ""
    count = summary.file_count
    folders = f" in {format_count(summary.dir_count, 'folder')}" if summary.dir_count else ""
    lines = [f"{summary.name!r}{by}: {format_count(count, 'file')}{folders}, {format_bytes(summary.total_bytes)}"]
    # The sharer's words, each marked as quoted and short enough never to wrap
    # (a wrapped row would lose its mark and could pass for a file of the list).
    said = summary.description.splitlines()
    lines += [f"  > {_cut(line, DESCRIPTION_CHARS)}" for line in said[:DESCRIPTION_LINES]]
    if len(said) > DESCRIPTION_LINES:
        lines.append(f"  > ({format_count(len(said) - DESCRIPTION_LINES, 'more line')})")
    for path, size in summary.files[:shown]:
        lines.append(f"  {path}  ({format_bytes(size)})")
    if count > shown:
        lines.append(f"  … and {count - shown} more")
    warning = hidden_warning(summary)
    if warning:
        lines.append(f"p2pshare: warning: {warning}")  # as every warning reads
    if free_bytes is not None:
        lines.append(
            f"Needs {format_bytes(summary.needed_bytes)}{_kept(summary)}; {format_bytes(free_bytes)} free here."
        )
    return lines


def _kept(summary: ShareSummary) -> str:
    """What is already here (an earlier run), after "Needs N"."""
    return f" more ({format_bytes(summary.here_bytes)} already here)" if summary.here_bytes > 0 else ""


def hidden_tops(
    paths: Iterable[str], dirs: Iterable[str] = (), safe: Callable[[str], str] = str
) -> tuple[tuple[str, ...], int]:
    """The hidden entries (a name starting with ``.``) a share puts at the
    top of the output directory, as shown (``.bash_profile``, ``.ssh/ (1
    file)``; at most :data:`SHOWN_HIDDEN`, by name), and how many in all.

    The question listed the first 5 files, in the sharer's order, and
    counted the rest: a hostile-peer review (stop 44) put
    ``.bash_profile``, ``.ssh/authorized_keys`` and
    ``.config/autostart/…`` after 5 photos ("… and 43 more"); received
    with the default ``-o .`` in a home directory, the next login shell ran
    the sharer's code. Hidden names deeper down (``photos/.thumbs``) land
    inside a directory the share creates and are not listed. ``safe``
    makes a name fit to print (only the shown ones are passed to it)."""
    files: dict[str, int] = {}  # top-level hidden name -> files under it (-1: it is a file)
    for path in paths:
        if path[:1] == ".":
            top, sep, _rest = path.partition("/")
            files[top] = files.get(top, 0) + 1 if sep else -1
    for path in dirs:
        if path[:1] == ".":
            files.setdefault(path.partition("/")[0], 0)
    shown = []
    for name in sorted(files)[:SHOWN_HIDDEN]:
        n = files[name]
        shown.append(safe(name) if n < 0 else f"{safe(name)}/" + (f" ({format_count(n, 'file')})" if n else ""))
    return tuple(shown), len(files)


def hidden_warning(summary: ShareSummary) -> str | None:
    """One line naming the hidden entries at the top of the output
    directory (where a shell, ssh or a desktop reads its settings), or None."""
    if not summary.hidden_count:
        return None
    more = summary.hidden_count - len(summary.hidden)
    names = ", ".join(summary.hidden) + (f" and {more} more" if more > 0 else "")
    return (
        f"the share puts {format_count(summary.hidden_count, 'hidden name')} at the top of the output "
        f"directory, where programs read their settings: {names}"
    )


def no_space_message(summary: ShareSummary, free_bytes: int, where: str) -> str:
    """The one-line refusal: what, how much, and what to do."""
    return (
        f"the share does not fit in {where}: it needs {format_bytes(summary.needed_bytes)}, "
        f"{format_bytes(free_bytes)} is free; free some space or choose another directory with -o"
    )


def prompt_text(where: str) -> str:
    """The question; ``where`` is absolute ("Receive it into .?" said little)."""
    return f"Receive it into {where}? [y/N] "


def parse_answer(answer: str | None) -> bool:
    """y/yes (any case) is yes; anything else, an empty line or end of input is no."""
    return answer is not None and answer.strip().lower() in ("y", "yes")


def summary_of(
    name: str,
    sharer: str | None,
    files: Sequence[tuple[str, int]],
    needed_bytes: int | None = None,
    *,
    file_count: int | None = None,
    total_bytes: int | None = None,
    description: str = "",
    hidden: tuple[tuple[str, ...], int] = ((), 0),
    dir_count: int = 0,
    here_bytes: int = 0,
) -> ShareSummary:
    """A summary of ``files`` (all of them, or the first few with the count
    and total given); ``needed_bytes`` defaults to the whole share.
    ``hidden``: :func:`hidden_tops` of all the share's paths."""
    total = sum(size for _, size in files) if total_bytes is None else total_bytes
    return ShareSummary(
        name=name,
        sharer=sharer,
        files=tuple(files[:SHOWN_FILES]),
        file_count=len(files) if file_count is None else file_count,
        total_bytes=total,
        needed_bytes=total if needed_bytes is None else needed_bytes,
        description=description,
        hidden=hidden[0],
        hidden_count=hidden[1],
        dir_count=dir_count,
        here_bytes=here_bytes,
    )


def saved_paths(paths: Sequence[str], renamed: Sequence[tuple[str, str]]) -> list[str]:
    """The manifest's ``paths`` as they were saved: a file ``--rename``
    saved beside one already there (``renamed``: path, new last name) is
    named by its new name, so the summary and ``saved_to`` point at the
    file received, not at the one that was there."""
    new = dict(renamed)
    return [p.rsplit("/", 1)[0] + "/" + new[p] if "/" in p and p in new else new.get(p, p) for p in paths]


def landing(output: Path, paths: Sequence[str], dirs: Sequence[str] = (), *, here: bool = False) -> tuple[str, Path]:
    """Where the files went, in words and as a path: ``into out/photos/``
    (``here``: where they already were, ``in out/photos/``).

    Manifest paths start with the shared directory's name, so "into out"
    named a directory that held only ``out/photos/``; name that instead, or
    the one file, and fall back to ``output`` when the top levels differ.
    A share of empty folders only (no ``paths``) is named by its ``dirs``.
    """
    into, to = ("in", "at") if here else ("into", "to")
    if not paths:
        tops = {d.split("/", 1)[0] for d in dirs}
        where = output / tops.pop() if len(tops) == 1 else output
        return f"{into} {_shown(where)}/", where
    if len(paths) == 1:
        where = output / paths[0]
        return f"{to} {_shown(where)}", where
    tops = {p.split("/", 1)[0] for p in paths}
    if len(tops) == 1 and all("/" in p for p in paths):
        where = output / tops.pop()
        return f"{into} {_shown(where)}/", where
    return f"{into} {_shown(output)}/", output


def _shown(path: Path) -> str:
    """A path the sharer named, safe to print: ``invoice<U+202E>fdp.exe``
    read as "invoiceexe.pdf" in the final line (a hostile-peer review)."""
    return sanitize_text(str(path), limit=4096)
