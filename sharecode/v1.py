"""The v1 share code: URL-safe base64 of compact, key-sorted JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ._base64 import (
    b64decode_forgiving,
    b64encode_urlsafe,
    check_key,
    decode_key_field,
    encode_key_field,
)
from .addresses import MAX_ADDRESSES, validate_multiaddr
from .errors import ShareCodeError, quote
from .human import normalize_human_code
from .peerid import validate_peer_id

__all__ = ["MAX_CODE_CHARS", "VERSION", "ShareCode", "parse_v1", "thaw"]

VERSION = 1
MAX_CODE_CHARS = 16 * 1024
MAX_EXTRA_DEPTH = 16
KNOWN_FIELDS = frozenset({"version", "peer_id", "addresses", "encryption_key", "share_code"})


def _freeze(value: object, where: str, depth: int = 0) -> object:
    """A deep immutable copy of a JSON value (dict -> mappingproxy, list -> tuple)."""
    if depth > MAX_EXTRA_DEPTH:
        raise ShareCodeError(f"field {where} is nested too deeply (at most {MAX_EXTRA_DEPTH})")
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ShareCodeError(f"field {where} is not a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v, where, depth + 1) for v in value)
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ShareCodeError(f"field {where} has a non-string key")
            out[k] = _freeze(v, where, depth + 1)
        return MappingProxyType(out)
    raise ShareCodeError(f"field {where} has wrong type: {type(value).__name__} is not JSON")


def thaw(value: object) -> Any:
    """The JSON-able (mutable) form of a frozen value, for ``json.dumps``."""
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    return value


def _freeze_extra(extra: object) -> Mapping[str, object]:
    if not isinstance(extra, Mapping):
        raise ShareCodeError(f"extra fields must be a mapping, got {type(extra).__name__}")
    out: dict[str, object] = {}
    for key, value in extra.items():
        if not isinstance(key, str):
            raise ShareCodeError("extra field names must be strings")
        if key in KNOWN_FIELDS:
            raise ShareCodeError(f"extra field {quote(key)} clashes with a known field")
        out[key] = _freeze(value, quote(key))
    return MappingProxyType(out)


@dataclass(frozen=True)
class ShareCode:
    """A decoded v1 code. Construction validates and normalises every field,
    so any instance encodes to a code that ``parse_code`` accepts and that
    decodes back to an equal instance."""

    peer_id: str
    addresses: tuple[str, ...]
    encryption_key: bytes = dataclasses.field(repr=False)
    share_code: str
    version: int = VERSION
    # Unknown JSON fields, kept for round trips; excluded from the hash
    # (a mappingproxy is not hashable) but part of equality.
    extra: Mapping[str, object] = dataclasses.field(default_factory=lambda: MappingProxyType({}), hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.version, int) or isinstance(self.version, bool):
            raise ShareCodeError("field version has wrong type: expected integer")
        if self.version != VERSION:
            shown = str(self.version) if abs(self.version) < 10**9 else "(huge)"
            raise ShareCodeError(f"unknown version {shown} (this program reads version {VERSION})")
        validate_peer_id(self.peer_id)
        check_key(self.encryption_key)
        object.__setattr__(self, "share_code", normalize_human_code(self.share_code))
        object.__setattr__(self, "addresses", _check_addresses(self.addresses, self.peer_id))
        object.__setattr__(self, "extra", _freeze_extra(self.extra))
        size = len(self.encode())
        if size > MAX_CODE_CHARS:
            raise ShareCodeError(f"code too long: {size} characters (at most {MAX_CODE_CHARS})")

    def to_json_obj(self) -> dict[str, Any]:
        """The JSON object (extra fields included), key in standard base64."""
        obj: dict[str, Any] = thaw(self.extra)
        obj.update(
            version=self.version,
            peer_id=self.peer_id,
            addresses=list(self.addresses),
            encryption_key=encode_key_field(self.encryption_key),
            share_code=self.share_code,
        )
        return obj

    def encode(self) -> str:
        """Compact key-sorted JSON in URL-safe base64 without padding."""
        text = json.dumps(self.to_json_obj(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return b64encode_urlsafe(text.encode("utf-8"))

    def with_addresses(self, addrs: Iterable[str]) -> ShareCode:
        """A copy reachable at ``addrs`` (validated like parsed addresses)."""
        return dataclasses.replace(self, addresses=tuple(addrs))


def _check_addresses(addrs: object, peer_id: str) -> tuple[str, ...]:
    if isinstance(addrs, (str, bytes)) or not isinstance(addrs, (list, tuple)):
        raise ShareCodeError(f"field addresses has wrong type: expected a list, got {type(addrs).__name__}")
    if len(addrs) > MAX_ADDRESSES:
        raise ShareCodeError(f"too many addresses: {len(addrs)} (at most {MAX_ADDRESSES})")
    return tuple(validate_multiaddr(a, peer_id, i) for i, a in enumerate(addrs, 1))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ShareCodeError(f"not JSON: duplicate field {quote(key)}")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ShareCodeError(f"not JSON: {name} is not allowed")


_JSON_TYPE_NAMES: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "string",
    int: "integer",
    float: "float",
    bool: "boolean",
    type(None): "null",
}


def _field(obj: dict[str, Any], name: str, kind: type) -> Any:
    if name not in obj:
        raise ShareCodeError(f"missing field {name}")
    value = obj[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        got = _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
        raise ShareCodeError(f"field {name} has wrong type: expected {_JSON_TYPE_NAMES[kind]}, got {got}")
    return value


def parse_v1(text: str) -> ShareCode:
    """Decode a v1 code; ``text`` is bounded by the caller. Any refusal is
    first checked for the one cause its own message would misname: a whole
    code with characters after its end."""
    try:
        return _parse_v1(text)
    except ShareCodeError:
        _refuse_extra_at_end(text)
        raise


def _parse_v1(text: str) -> ShareCode:
    raw = b64decode_forgiving(text, "code")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ShareCodeError("not a share code: it does not decode to text") from None
    try:
        obj = json.loads(decoded, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except ShareCodeError:
        raise
    except json.JSONDecodeError as exc:
        at_end = exc.pos >= len(decoded.rstrip()) or exc.msg.startswith("Unterminated string")
        if decoded.lstrip().startswith("{") and at_end:
            raise ShareCodeError(f"the code ends too early: it looks cut off after {len(text)} characters") from None
        # json's "Invalid control character at" already ends in "at".
        raise ShareCodeError(f"not JSON: {exc.msg.removesuffix(' at')} at character {exc.pos}") from None
    except (ValueError, RecursionError):  # e.g. 5000-digit integers, deep nesting
        raise ShareCodeError("not JSON: unsupported number or nesting") from None
    if not isinstance(obj, dict):
        raise ShareCodeError(f"JSON is not an object (got {_JSON_TYPE_NAMES.get(type(obj), 'value')})")
    version = _field(obj, "version", int)
    if version != VERSION:
        shown = str(version) if abs(version) < 10**9 else "(huge)"
        raise ShareCodeError(f"unknown version {shown} (this program reads version {VERSION})")
    peer_id = _field(obj, "peer_id", str)
    key = decode_key_field(_field(obj, "encryption_key", str))
    share_code = _field(obj, "share_code", str)
    addresses = _field(obj, "addresses", list)
    extra = {k: v for k, v in obj.items() if k not in KNOWN_FIELDS}
    return ShareCode(
        peer_id=peer_id,
        addresses=tuple(addresses),
        encryption_key=key,
        share_code=share_code,
        version=version,
        extra=extra,
    )


def _refuse_extra_at_end(text: str) -> None:
    """Raise the precise error if ``text`` is a whole code with characters
    typed or pasted after its end (``CODEx``, ``CODEthanks``); return if not.

    Why: base64 keeps a code's bytes as a prefix of what characters added
    after it decode to (they only complete its last group), so such a code
    decodes to a whole JSON object followed by a few stray bytes. Without
    this the person hears "cut off", "impossible length; truncated?" or "Extra
    data" -- the opposite of what happened. Only the leading complete object
    is looked at; nothing here accepts the code."""
    body = "".join(text.split()).rstrip("=")
    try:
        raw = b64decode_forgiving(body[:-1] if len(body) % 4 == 1 else body, "code")
        decoded = raw.decode("utf-8", "replace")  # stray bytes may be anything
        obj, end = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_reject_constant).raw_decode(
            decoded
        )
    except (ValueError, RecursionError):  # ShareCodeError, JSONDecodeError: not a code with a tail
        return
    if not isinstance(obj, dict) or "version" not in obj or end == len(decoded):
        return
    whole = -(-4 * len(decoded[:end].encode("utf-8")) // 3)  # base64 characters of the object's bytes
    extra = len(body) - whole
    if extra > 0:
        many = "character" if extra == 1 else "characters"
        raise ShareCodeError(f"{extra} {many} too many at the end: the code itself ends after {whole} characters")
