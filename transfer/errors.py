"""Transfer errors, split by whose fault they are.

Each class is a ``TransferError`` (what the transfer code catches) placed on
a branch of ``p2pshare.errors``: ``LocalError`` is this machine's (bad input
paths, unwritable or conflicting output), ``RemoteError`` the peer's or the
network's, ``ProtocolViolation`` a peer breaking the wire protocol. Every
error carries a one-line ``str()`` for the user; the CLI maps the classes to
exit codes, and ``retryable`` tells the receiver whether to reconnect.
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Sequence
from dataclasses import dataclass

from p2pshare.errors import LocalError, P2PShareError, ProtocolViolation, RemoteError

__all__ = [
    "MAX_MESSAGE_CHARS",
    "sanitize_text",
    "TransferError",
    "LocalError",
    "RemoteError",
    "ShareKeyError",
    "OutputError",
    "OutputBusyError",
    "ConflictError",
    "cannot_write",
    "SourceError",
    "PeerReportedError",
    "AuthenticationError",
    "IntegrityError",
    "SourceChangedError",
    "UnavailableReason",
    "UnavailableFile",
    "FilesUnavailableError",
    "ProtocolError",
    "UnknownShareError",
    "BusyError",
    "SharerStoppedError",
    "StreamEndedError",
]

MAX_MESSAGE_CHARS = 200


def sanitize_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Make peer-supplied text safe to print on one terminal line.

    Control and non-printable characters (including escape sequences and
    bidi overrides) become ``?`` and the result is cut to ``limit`` chars.
    """
    out = []
    for ch in text[:limit]:
        out.append(ch if ch.isprintable() else "?")
    result = "".join(out)
    if len(text) > limit:
        result += "..."
    return result


class TransferError(P2PShareError):
    """Base of every transfer failure; ``str(err)`` is one line."""


class ShareKeyError(TransferError, LocalError):
    """The share key we were given cannot be used (e.g. wrong length)."""


class OutputError(TransferError, LocalError):
    """The output cannot be written: unwritable, conflicting or unsafe."""


def cannot_write(what: str, exc: OSError) -> OutputError:
    """``cannot write WHAT: <reason>``; when the disk is full (or a quota
    reached) also what to do: what arrived is verified and kept, so freeing
    space and running ``get`` again resumes (it re-checks the partial files)."""
    text = f"cannot write {what}: {exc.strerror or exc}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        text += "; free some space and run the same command again to resume (what arrived is kept)"
    return OutputError(text)


def cannot_create_output(output_dir: object, exc: OSError) -> str:
    """Why ``get -o DIR`` cannot make its directory, in words that say what to change."""
    if exc.errno == errno.EEXIST:
        return f"output {output_dir} exists and is not a directory; choose a directory with -o"
    if exc.errno == errno.ENOTDIR:
        return f"cannot create output directory {output_dir}: a part of its path is a file, not a directory"
    return f"cannot create output directory {output_dir}: {exc.strerror or exc}"


class OutputBusyError(OutputError):
    """Another receiver is writing this share into this output directory now."""


class ConflictError(OutputError):
    """A file of the share is already there with other content (``get``'s default refuses).

    ``shown``: that file, as the message names it."""

    def __init__(self, message: str, shown: str = "", *, a_file: bool = True) -> None:
        super().__init__(message)
        self.shown = shown
        #: A file is there (``--overwrite`` replaces it), not a directory or symlink.
        self.a_file = a_file


def conflict_refusal(shown: str, *, a_file: bool) -> ConflictError:
    """A file of the share meets another file (``a_file``) at its name, or
    something no flag replaces (a directory): that one was told that
    ``--overwrite`` replaces it, even with ``--overwrite`` given (found by
    a usability review)."""
    if a_file:
        why = "it exists with different content; --overwrite replaces it"
        return ConflictError(f"refusing to overwrite {shown}: {why}, --rename keeps both", shown)
    why = "something other than a file is in its place (--overwrite replaces only files); move it away"
    return ConflictError(f"refusing to write {shown}: {why}, or --rename keeps both", shown, a_file=False)


#: Conflicting files named in one refusal; ``get`` stops looking after one more.
SHOWN_CONFLICTS = 3


def conflicts_error(found: list[ConflictError]) -> ConflictError:
    """One refusal for the conflicts ``assess`` found (up to ``SHOWN_CONFLICTS + 1``):
    a person deciding between ``--overwrite`` and ``--rename`` sees how far it goes."""
    if len(found) == 1:
        return found[0]
    names = ", ".join(c.shown for c in found[:SHOWN_CONFLICTS])
    more = " and others" if len(found) > SHOWN_CONFLICTS else ""
    if all(c.a_file for c in found):
        why = "they exist with different content; --overwrite replaces them"
    else:  # --overwrite given, or not: no flag replaces a directory
        others = ", ".join(c.shown for c in found if not c.a_file)
        why = f"something other than a file is in the place of {others} (--overwrite replaces only files); move it away"
    return ConflictError(f"refusing to overwrite {names}{more}: {why}, --rename keeps both", found[0].shown)


class NoSpaceError(OutputError):
    """The share cannot fit in the output directory: refused before any byte is written."""


class DeclinedError(TransferError, LocalError):
    """The person receiving said no when shown what the share holds."""


class SourceError(TransferError, LocalError):
    """A path to share is missing or unreadable."""


class PeerReportedError(TransferError, RemoteError):
    """The peer sent an ERROR frame with a code we have no class for."""


class AuthenticationError(TransferError, RemoteError):
    """Wrong key, or the peer failed to prove it holds the key."""


class IntegrityError(TransferError, RemoteError):
    """Data failed verification: bad tag or hash, truncated or reordered."""


class UnavailableReason(enum.IntEnum):
    """Why the sharer stopped serving one file; the values go on the wire
    (``FILE_UNAVAILABLE``), so they never change meaning."""

    CHANGED = 1  # the bytes read no longer match the manifest's hashes
    REMOVED = 2  # the file is gone
    UNREADABLE = 3  # any other error reading it (permissions, I/O, replaced by a symlink)

    @property
    def text(self) -> str:
        """Why, as the end of a sentence about the file."""
        return _REASON_TEXT[self]

    @property
    def label(self) -> str:
        """Why, as one word for ``--json`` output."""
        return self.name.lower()


_REASON_TEXT = {
    UnavailableReason.CHANGED: "changed on the sharer's side after it was shared",
    UnavailableReason.REMOVED: "removed on the sharer's side after it was shared",
    UnavailableReason.UNREADABLE: "no longer readable on the sharer's side",
}


@dataclass(frozen=True)
class UnavailableFile:
    """A file of the manifest (its path there) that the sharer stopped serving."""

    path: str
    reason: UnavailableReason


class SourceChangedError(IntegrityError):
    """The shared files no longer match the manifest.

    Raised on the sharer when a file it reads changed (``file_index`` and
    ``reason`` say which and how: the sharer then stops serving that file
    only) and on the receiver when an older sharer ends the whole session
    with ERROR SOURCE_CHANGED: either way the bytes the share promises are
    gone, which the receiver sees as integrity.
    """

    def __init__(
        self, message: str, *, file_index: int | None = None, reason: UnavailableReason = UnavailableReason.CHANGED
    ) -> None:
        super().__init__(message)
        self.file_index = file_index
        self.reason = reason


class FilesUnavailableError(SourceChangedError):
    """Everything the sharer still serves arrived, but it stopped serving these files.

    The files that arrived are verified and in place; each missing one keeps
    its verified part under ``.p2pshare-partial`` (a later share of the new
    content reuses the chunks that still match). Not retryable: the sharer
    remembers the files it stopped serving and would say so again at once.
    """

    #: Files named in the message; the rest are counted (``details`` has them all).
    MAX_NAMED = 3

    def __init__(self, *, files: int, output_dir: str, unavailable: Sequence[UnavailableFile]) -> None:
        self.files = files
        self.output_dir = output_dir
        self.unavailable = tuple(unavailable)
        named = ", ".join(f"{sanitize_text(u.path)} ({u.reason.text})" for u in self.unavailable[: self.MAX_NAMED])
        more = len(self.unavailable) - self.MAX_NAMED
        if more > 0:
            named += f" and {more} more"
        noun = "file" if files == 1 else "files"
        super().__init__(
            f"{self.received} of {files} {noun} received into {sanitize_text(output_dir)}; not received: {named}"
        )

    @property
    def received(self) -> int:
        return self.files - len(self.unavailable)

    def details(self) -> dict[str, object]:
        return {
            "files": self.files,
            "files_received": self.received,
            "output": self.output_dir,
            "not_received": [{"path": u.path, "reason": u.reason.label} for u in self.unavailable],
        }


class ProtocolError(TransferError, ProtocolViolation):
    """The peer sent malformed or unexpected frames."""


class UnknownShareError(TransferError, RemoteError):
    """The peer does not serve this share (wrong or expired code)."""


class BusyError(TransferError, RemoteError):
    """The sharer is too busy to serve us now."""

    retryable = True


class SharerStoppedError(TransferError, RemoteError):
    """The sharer stopped sharing (Ctrl-C, ``--once`` done, its preparation
    failed) and said so with ERROR STOPPED before it went.

    Not retryable: reconnecting to a sharer that chose to stop would only
    wait out ``--timeout`` (60 s by default) to say less. Verified data stays
    in ``.p2pshare-partial``; the same command resumes once it shares again.
    """

    MESSAGE = "the sharer stopped sharing; once it shares again, run the same command to resume (what arrived is kept)"

    def __init__(self, message: str = MESSAGE) -> None:
        super().__init__(message)


class StreamEndedError(TransferError, RemoteError):
    """The stream ended (EOF, reset, timeout) before the transfer finished.

    Verified data stays in ``.p2pshare-partial`` and is reused next time.
    """

    retryable = True

    def __init__(self, detail: str = "the connection ended") -> None:
        super().__init__(f"{detail} before the transfer finished; run the same command again to resume")
        self.detail = detail
