"""Entry points: parse any share code, describe one for ``p2pshare code show``."""

from __future__ import annotations

from ._base64 import encode_key_field
from .errors import ShareCodeError
from .human import HUMAN_ALPHABET, HUMAN_CODE_LENGTH
from .legacy import LegacyCode, parse_legacy
from .v1 import MAX_CODE_CHARS, ShareCode, parse_v1, thaw

__all__ = ["REDACTED", "describe", "parse_code"]

REDACTED = "<redacted>"


def parse_code(text: str) -> ShareCode | LegacyCode:
    """Parse a pasted share code: v1 (base64 JSON) or legacy ``CODE:KEY:IP:PORT``.

    Whitespace anywhere is ignored (copy and paste wraps lines). A ``:``
    means legacy: neither base64 alphabet contains one. Every problem is a
    one-line ``ShareCodeError``.
    """
    if not isinstance(text, str):
        raise ShareCodeError(f"share code must be text, got {type(text).__name__}")
    if len(text) > MAX_CODE_CHARS:
        raise ShareCodeError(f"code too long: {len(text)} characters (at most {MAX_CODE_CHARS})")
    compact = "".join(text.split())
    if not compact:
        raise ShareCodeError("share code is empty")
    if ":" in compact:
        return parse_legacy(compact)
    if _looks_like_tag(compact):
        # `share` prints this tag in parentheses; people sent it (issue 11).
        raise ShareCodeError(
            f"{compact} is the share's tag, not a code to receive with "
            "(the short code looks like 1234-word-word-word, the long one is ~300 characters)"
        )
    return parse_v1(compact)


def _looks_like_tag(compact: str) -> bool:
    """The 12-character share tag (``H9F9WYXCWJ6R``), in any case, dashes allowed."""
    tag = compact.replace("-", "").upper()
    return len(tag) == HUMAN_CODE_LENGTH and all(c in HUMAN_ALPHABET for c in tag)


def describe(code: ShareCode | LegacyCode, *, reveal_key: bool = False) -> dict[str, object]:
    """All decoded fields as JSON-able values; the key is ``"<redacted>"``
    unless ``reveal_key`` (then standard base64 for v1, hex for legacy,
    matching each format's own spelling)."""
    if isinstance(code, ShareCode):
        return {
            "format": "v1",
            "version": code.version,
            "peer_id": code.peer_id,
            "addresses": list(code.addresses),
            "share_code": code.share_code,
            "encryption_key": encode_key_field(code.encryption_key) if reveal_key else REDACTED,
            "extra": thaw(code.extra),
        }
    return {
        "format": "legacy",
        "share_code": code.share_code,
        "host": code.host,
        "port": code.port,
        "addresses": [code.multiaddr()],
        "encryption_key": code.encryption_key.hex() if reveal_key else REDACTED,
    }
