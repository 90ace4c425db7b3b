"""Human share codes and the DHT key derived from them."""

from __future__ import annotations

import hashlib
import secrets

from .errors import ShareCodeError

__all__ = [
    "HUMAN_ALPHABET",
    "HUMAN_CODE_LENGTH",
    "MAX_HUMAN_CODE",
    "MIN_HUMAN_CODE",
    "dht_key",
    "new_human_code",
    "normalize_human_code",
]

# No 0/O, 1/I/L, U: nothing a reader can confuse, nothing rude by accident.
HUMAN_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
HUMAN_CODE_LENGTH = 12  # 30**12 ~ 2**59
MIN_HUMAN_CODE = 8
MAX_HUMAN_CODE = 64
_MAX_RAW = 2 * MAX_HUMAN_CODE  # separators included
_ALLOWED = frozenset(HUMAN_ALPHABET)

DHT_KEY_PREFIX = b"p2pshare/provider/v1\x00"


def new_human_code() -> str:
    """A fresh random code of 12 characters from ``HUMAN_ALPHABET``."""
    return "".join(secrets.choice(HUMAN_ALPHABET) for _ in range(HUMAN_CODE_LENGTH))


def normalize_human_code(code: str) -> str:
    """Upper-case, strip ``-`` separators and validate; return the canonical code.

    The code itself is never echoed in errors: it is what finds the share.
    """
    if not isinstance(code, str):
        raise ShareCodeError(f"share code must be a string, got {type(code).__name__}")
    if len(code) > _MAX_RAW:
        raise ShareCodeError(f"share code too long ({len(code)} characters, at most {MAX_HUMAN_CODE})")
    norm = code.replace("-", "").upper()
    for pos, ch in enumerate(norm, 1):
        if ch not in _ALLOWED:
            raise ShareCodeError(f"share code has a character outside {HUMAN_ALPHABET} at position {pos}")
    if not MIN_HUMAN_CODE <= len(norm) <= MAX_HUMAN_CODE:
        raise ShareCodeError(f"share code is {len(norm)} characters, expected {MIN_HUMAN_CODE} to {MAX_HUMAN_CODE}")
    return norm


def dht_key(human_code: str) -> bytes:
    """The 32-byte key a share is advertised under in the DHT.

    Domain-separated SHA-256 of the normalised code, so the DHT sees neither
    the code in clear nor anything about the encryption key.
    """
    norm = normalize_human_code(human_code)
    return hashlib.sha256(DHT_KEY_PREFIX + norm.encode("ascii")).digest()
