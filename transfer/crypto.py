"""Key derivation, handshake proofs, manifest and chunk encryption.

One 32-byte share key K gives three independent subkeys (HKDF-SHA256 with
distinct labels): ``share_id`` names the share on the wire without revealing
K, ``auth_key`` signs the handshake proofs, ``data_key`` encrypts with
AES-256-GCM. Proofs bind both nonces and both Noise-authenticated peer IDs,
so a proof is useless on any other connection. Chunk AAD binds share,
manifest digest, position and the last-chunk flag, so chunks cannot be
swapped, replayed from another share or version, or cut short unnoticed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from p2pshare.errors import P2PShareError
from p2pshare.transfer.gathered import Gathered, Joiner

KEY_BYTES = 32
SHARE_ID_BYTES = 16
NONCE_BYTES = 32  # handshake nonces
GCM_NONCE_BYTES = 12
TAG_BYTES = 16
#: A sealed chunk as it arrived: one buffer, or the pieces it came in.
Body = bytes | bytearray | memoryview | Gathered
MAC_BYTES = 32
MAX_PEER_ID_BYTES = 1024

_SALT = b"p2pshare/v1 hkdf"
_LABEL_RECEIVER = b"p2pshare/v1 receiver"
_LABEL_SHARER = b"p2pshare/v1 sharer"
_LABEL_MANIFEST = b"p2pshare/v1 manifest"
_LABEL_CHUNK = b"p2pshare/v1 chunk"


class DecryptError(P2PShareError, ValueError):
    """Authentication tag did not verify (callers raise ``IntegrityError``)."""


def _hkdf(key: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=info).derive(key)


@dataclass(frozen=True)
class ShareKeys:
    """The subkeys of one share key. ``repr`` never shows key material."""

    share_id: bytes
    auth_key: bytes = field(repr=False)
    data_key: bytes = field(repr=False)

    @classmethod
    def derive(cls, key: bytes, share_code: str | None = None) -> ShareKeys:
        """Subkeys of ``key``; the wire ``share_id`` comes from the human code when given.

        Naming the share by its human code (not the key) lets a sharer tell a
        receiver with the right code but a wrong key (authentication failure)
        from one with a wrong or expired code (unknown share).
        """
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise ValueError("share key must be 32 bytes")
        share_id = (
            hashlib.sha256(b"p2pshare/v1 share-id\x00" + share_code.upper().encode()).digest()[:SHARE_ID_BYTES]
            if share_code
            else _hkdf(key, b"share-id", SHARE_ID_BYTES)
        )
        return cls(
            share_id=share_id,
            auth_key=_hkdf(key, b"auth-key", 32),
            data_key=_hkdf(key, b"data-key", 32),
        )

    def aead(self) -> AESGCM:
        return AESGCM(self.data_key)


def share_id_for(key: bytes, share_code: str | None = None) -> bytes:
    return ShareKeys.derive(key, share_code).share_id


def _lp(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def proof(
    keys: ShareKeys,
    *,
    sharer: bool,
    nonce_r: bytes,
    nonce_s: bytes,
    sharer_peer_id: bytes,
    receiver_peer_id: bytes,
) -> bytes:
    """HMAC proof of key possession for one side of one connection."""
    if len(sharer_peer_id) > MAX_PEER_ID_BYTES or len(receiver_peer_id) > MAX_PEER_ID_BYTES:
        raise ValueError("peer ID too long")
    msg = b"".join(
        (
            _LABEL_SHARER if sharer else _LABEL_RECEIVER,
            keys.share_id,
            nonce_r,
            nonce_s,
            _lp(sharer_peer_id),
            _lp(receiver_peer_id),
        )
    )
    return hmac.new(keys.auth_key, msg, hashlib.sha256).digest()


def proofs_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def seal_manifest(keys: ShareKeys, plaintext: bytes) -> tuple[bytes, bytes]:
    nonce = os.urandom(GCM_NONCE_BYTES)
    return nonce, keys.aead().encrypt(nonce, plaintext, _LABEL_MANIFEST + keys.share_id)


def open_manifest(keys: ShareKeys, nonce: bytes, ciphertext: bytes | bytearray) -> bytes:
    try:
        return keys.aead().decrypt(nonce, ciphertext, _LABEL_MANIFEST + keys.share_id)
    except InvalidTag:
        raise DecryptError("manifest failed authentication") from None


_AAD_POS = struct.Struct(">IQB")


def chunk_aad(keys: ShareKeys, digest: bytes, file_index: int, chunk_index: int, is_last: bool) -> bytes:
    return b"".join((_LABEL_CHUNK, keys.share_id, digest, _AAD_POS.pack(file_index, chunk_index, int(is_last))))


class ChunkCipher:
    """Seals and opens chunks of one share version. Immutable: thread-safe."""

    def __init__(self, keys: ShareKeys, manifest_digest: bytes) -> None:
        self._keys = keys
        self._digest = manifest_digest
        self._aead = keys.aead()

    def seal(self, file_index: int, chunk_index: int, is_last: bool, plaintext: bytes) -> tuple[bytes, bytes]:
        """Return (nonce, ciphertext); the nonce is fresh random per send."""
        nonce = os.urandom(GCM_NONCE_BYTES)
        aad = chunk_aad(self._keys, self._digest, file_index, chunk_index, is_last)
        return nonce, self._aead.encrypt(nonce, plaintext, aad)

    def seal_into(
        self, file_index: int, chunk_index: int, is_last: bool, plaintext: bytes | memoryview, out: memoryview
    ) -> bytes:
        """Like ``seal``, but write ciphertext+tag into ``out`` (exactly
        ``len(plaintext) + TAG_BYTES`` long); return the fresh nonce."""
        nonce = os.urandom(GCM_NONCE_BYTES)
        aad = chunk_aad(self._keys, self._digest, file_index, chunk_index, is_last)
        self._aead.encrypt_into(nonce, plaintext, aad, out)
        return nonce

    def open(self, file_index: int, chunk_index: int, is_last: bool, nonce: bytes, ciphertext: Body) -> bytes:
        aad = chunk_aad(self._keys, self._digest, file_index, chunk_index, is_last)
        try:
            return self._aead.decrypt(nonce, bytes(ciphertext) if isinstance(ciphertext, Gathered) else ciphertext, aad)
        except InvalidTag:
            raise DecryptError("chunk failed authentication") from None

    def open_into(
        self,
        file_index: int,
        chunk_index: int,
        is_last: bool,
        nonce: bytes,
        ciphertext: Body,
        out: memoryview,
        joiner: Joiner | None = None,
    ) -> None:
        """Like ``open``, but write the plaintext into ``out`` (exactly
        ``len(ciphertext) - TAG_BYTES`` long). On a bad tag ``out`` holds
        garbage and ``DecryptError`` is raised.

        A ``Gathered`` body is first copied end to end into ``joiner``'s
        buffer (a new one if none is given), then opened with one call."""
        aad = chunk_aad(self._keys, self._digest, file_index, chunk_index, is_last)
        body = (joiner or Joiner()).join(ciphertext) if isinstance(ciphertext, Gathered) else ciphertext
        try:
            self._aead.decrypt_into(nonce, body, aad, out)
        except InvalidTag:
            raise DecryptError("chunk failed authentication") from None
