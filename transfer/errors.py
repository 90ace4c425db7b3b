"""Transfer errors, split by whose fault they are.

``LocalError`` is this machine's (bad input paths, unwritable or conflicting
output); ``RemoteError`` is the peer's or the network's. Every error carries a
one-line ``str()`` for the user and the CLI ``exit_code`` it maps to, so the
CLI never needs to inspect types beyond ``TransferError``.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_AUTH_OR_INTEGRITY = 4

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


class TransferError(Exception):
    """Base of every transfer failure; ``str(err)`` is one line."""

    exit_code = EXIT_UNREACHABLE
    #: True when running the same command again may succeed (and resume).
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class LocalError(TransferError):
    """A problem on our side."""

    exit_code = EXIT_BAD_INPUT


class OutputError(LocalError):
    """The output cannot be written: unwritable, conflicting or unsafe."""


class SourceError(LocalError):
    """A path to share is missing or unreadable."""


class RemoteError(TransferError):
    """A problem with the peer or the connection."""

    exit_code = EXIT_UNREACHABLE


class AuthenticationError(RemoteError):
    """Wrong key, or the peer failed to prove it holds the key."""

    exit_code = EXIT_AUTH_OR_INTEGRITY


class IntegrityError(RemoteError):
    """Data failed verification: bad tag or hash, truncated or reordered."""

    exit_code = EXIT_AUTH_OR_INTEGRITY


class SourceChangedError(IntegrityError):
    """The sharer's files changed since the share was created."""


class ProtocolError(RemoteError):
    """The peer sent malformed or unexpected frames."""

    exit_code = EXIT_AUTH_OR_INTEGRITY


class UnknownShareError(RemoteError):
    """The peer does not serve this share (wrong or expired code)."""

    exit_code = EXIT_UNREACHABLE


class BusyError(RemoteError):
    """The sharer is too busy to serve us now."""

    exit_code = EXIT_UNREACHABLE
    retryable = True


class StreamEndedError(RemoteError):
    """The stream ended (EOF, reset, timeout) before the transfer finished.

    Verified data stays in ``.p2pshare-partial`` and is reused next time.
    """

    exit_code = EXIT_UNREACHABLE
    retryable = True

    def __init__(self, detail: str = "the connection ended") -> None:
        super().__init__(f"{detail} before the transfer finished; run the same command again to resume")
