"""The one error type of the package: every malformed code becomes one line."""

from __future__ import annotations

__all__ = ["ShareCodeError", "quote"]

_QUOTE_MAX = 80


class ShareCodeError(ValueError):
    """A share code (or one of its parts) is malformed.

    ``str()`` is always a single line, fit to print after ``error:`` in the
    CLI (exit code 2). Messages never contain the encryption key.
    """

    def __init__(self, message: str) -> None:
        # Guarantee the one-line contract even if a caller slips up.
        super().__init__(" ".join(message.split()))


def quote(value: str) -> str:
    """Quote untrusted text for an error message: bounded, one line, printable."""
    if len(value) > _QUOTE_MAX:
        value = value[: _QUOTE_MAX - 3] + "..."
    # ascii() escapes newlines, control and non-ASCII characters.
    return ascii(value)
