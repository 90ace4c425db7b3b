"""The error types of the package: every malformed code becomes one line."""

from __future__ import annotations

from p2pshare.errors import LocalError

__all__ = ["ShareCodeError", "ShortCodeError", "quote"]

_QUOTE_MAX = 80


class ShareCodeError(LocalError, ValueError):
    """A share code (or one of its parts) is malformed.

    ``str()`` is always a single line, fit to print after ``error:`` in the
    CLI (exit code 2); the root class keeps it to one line. Messages never
    contain the encryption key.
    """


class ShortCodeError(ShareCodeError):
    """A short code (``4127-guitar-ocean-velvet``) is malformed: the person
    typed it, so the advice differs from a pasted long code's."""


def quote(value: str) -> str:
    """Quote untrusted text for an error message: bounded, one line, printable."""
    if len(value) > _QUOTE_MAX:
        value = value[: _QUOTE_MAX - 3] + "..."
    # ascii() escapes newlines, control and non-ASCII characters.
    return ascii(value)
