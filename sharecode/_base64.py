"""Base64 helpers: forgiving for pasted codes, strict inside the JSON."""

from __future__ import annotations

import base64
import binascii
import re

from .errors import ShareCodeError

__all__ = [
    "KEY_BYTES",
    "b64decode_forgiving",
    "b64encode_urlsafe",
    "check_key",
    "decode_key_field",
    "encode_key_field",
]

KEY_BYTES = 32
_B64_BODY = re.compile(r"[A-Za-z0-9+/_-]*")
_URLSAFE_TO_STD = str.maketrans("-_", "+/")


def b64encode_urlsafe(data: bytes) -> str:
    """URL-safe base64 without padding: one double-click selects it all."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode_forgiving(text: str, what: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not, ignoring whitespace.

    Anything else is ``ShareCodeError("<what> is not base64 (...)")``; the
    text itself is never echoed (it may be a key).
    """
    compact = "".join(text.split())
    body = compact.rstrip("=")
    if len(compact) - len(body) > 2:
        raise ShareCodeError(f"{what} is not base64 (too much '=' padding)")
    if not _B64_BODY.fullmatch(body):
        pos = next(i for i, ch in enumerate(body, 1) if not _B64_BODY.fullmatch(ch))
        raise ShareCodeError(f"{what} is not base64 (bad character at position {pos})")
    if len(body) % 4 == 1:
        raise ShareCodeError(f"{what} is not base64 (impossible length; truncated?)")
    std = body.translate(_URLSAFE_TO_STD) + "=" * (-len(body) % 4)
    try:
        return base64.b64decode(std, validate=True)
    except binascii.Error:  # pragma: no cover - excluded by the checks above
        raise ShareCodeError(f"{what} is not base64") from None


def encode_key_field(key: bytes) -> str:
    """The JSON form of the key: standard base64 with padding."""
    return base64.b64encode(key).decode("ascii")


def decode_key_field(value: str) -> bytes:
    """Strictly decode the JSON ``encryption_key`` (standard, padded base64)."""
    if len(value) > 4 * KEY_BYTES or not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", value):
        raise ShareCodeError("field encryption_key is not standard base64")
    try:
        key = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ShareCodeError("field encryption_key is not standard base64") from None
    check_key(key)
    return key


def check_key(key: object) -> bytes:
    """Check ``key`` is 32 bytes; the message gives the length, never the bytes."""
    if not isinstance(key, bytes):
        raise ShareCodeError(f"encryption key must be bytes, got {type(key).__name__}")
    if len(key) != KEY_BYTES:
        raise ShareCodeError(f"encryption key is {len(key)} byte{'' if len(key) == 1 else 's'}, expected {KEY_BYTES}")
    return key
