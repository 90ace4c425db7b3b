"""libp2p peer ID validation without importing libp2p (it is slow to import).

A peer ID is a base58btc multihash: either *identity* (the protobuf-encoded
public key inlined, for keys of at most 42 bytes such as Ed25519) or
*sha2-256* of the key (``Qm...``, e.g. RSA).
"""

from __future__ import annotations

import re

import base58

from .errors import ShareCodeError

__all__ = [
    "MAX_PEER_ID_CHARS",
    "is_valid_peer_id",
    "peer_id_to_bytes",
    "validate_peer_id",
]

# Identity IDs are at most 2 + 42 bytes (~60 chars); sha2-256 ones 46 chars.
# The bound also keeps base58 decoding (quadratic) cheap.
MAX_PEER_ID_CHARS = 128
_BASE58BTC = re.compile(r"[1-9A-HJ-NP-Za-km-z]+")

_MH_IDENTITY = 0x00
_MH_SHA2_256 = 0x12
_MAX_INLINE_KEY = 42

# libp2p crypto.pb KeyType values whose keys are small enough to be inlined.
_KEY_ED25519 = 1
_KEY_SECP256K1 = 2


def _bad(reason: str) -> ShareCodeError:
    return ShareCodeError(f"bad peer ID: {reason}")


def _check_inline_public_key(pb: bytes) -> None:
    """Check the protobuf ``PublicKey{Type=1 varint, Data=2 bytes}`` message.

    Only the deterministic encoding libp2p peers produce is accepted.
    """
    if len(pb) < 4 or pb[0] != 0x08:
        raise _bad("identity multihash does not hold a protobuf public key")
    key_type = pb[1]
    if pb[2] != 0x12:
        raise _bad("identity multihash does not hold a protobuf public key")
    data_len = pb[3]
    data = pb[4:]
    if data_len >= 0x80 or data_len != len(data):
        raise _bad("public key length does not match its protobuf header")
    if key_type == _KEY_ED25519:
        if len(data) != 32:
            raise _bad(f"Ed25519 public key is {len(data)} bytes, expected 32")
    elif key_type == _KEY_SECP256K1:
        if len(data) != 33 or data[0] not in (0x02, 0x03):
            raise _bad("secp256k1 public key is not a 33-byte compressed point")
    else:
        raise _bad(f"unsupported key type {key_type} in identity peer ID")


def peer_id_to_bytes(peer_id: str) -> bytes:
    """Decode and validate a base58btc peer ID; return its multihash bytes.

    Raises ``ShareCodeError("bad peer ID: ...")`` on anything malformed.
    """
    if not isinstance(peer_id, str):
        raise _bad(f"expected a string, got {type(peer_id).__name__}")
    if not peer_id:
        raise _bad("empty")
    if len(peer_id) > MAX_PEER_ID_CHARS:
        raise _bad(f"too long ({len(peer_id)} characters)")
    if not _BASE58BTC.fullmatch(peer_id):
        raise _bad("not base58btc")
    raw: bytes = base58.b58decode(peer_id)
    if len(raw) < 2:
        raise _bad("too short for a multihash")
    code, length, digest = raw[0], raw[1], raw[2:]
    if code == _MH_IDENTITY:
        if length > _MAX_INLINE_KEY or length != len(digest):
            raise _bad("identity multihash has a bad length")
        _check_inline_public_key(digest)
    elif code == _MH_SHA2_256:
        if length != 32 or len(digest) != 32:
            raise _bad("sha2-256 multihash is not 32 bytes")
    else:
        raise _bad(f"unsupported multihash code 0x{code:02x}")
    return raw


def validate_peer_id(peer_id: str) -> str:
    """Return ``peer_id`` unchanged if valid, else raise ``ShareCodeError``."""
    peer_id_to_bytes(peer_id)
    return peer_id


def is_valid_peer_id(peer_id: str) -> bool:
    """True if ``peer_id`` is a well-formed identity or sha2-256 peer ID."""
    try:
        peer_id_to_bytes(peer_id)
    except ShareCodeError:
        return False
    return True
