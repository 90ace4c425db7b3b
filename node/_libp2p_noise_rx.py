"""P1: Noise transport messages read in batches and decrypted where they lie
(a replacement for py-libp2p 0.8.1's ``NoiseTransportReadWriter.read_msg``,
issue 12).

Registered, fingerprinted and applied in ``_libp2p_patches.PATCHES`` (as
``noise_read_msg``); tested against upstream's reader in
``tests/node/test_libp2p_patches.py``.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from libp2p.io.exceptions import IncompleteReadError
from noise.backends.default.ciphers import ChaCha20Cipher  # type: ignore[import-untyped]
from noise.constants import MAX_NONCE  # type: ignore[import-untyped]
from noise.exceptions import NoiseInvalidMessage, NoiseMaxNonceError  # type: ignore[import-untyped]

from ._libp2p_noise_cipher import direct_decrypt

__all__ = ["READ_CHUNK", "_noise_read_msg", "take_ready_msg"]

_NONCE_PAD = bytes(4)
_TAG = 16

# Bytes pulled from the socket per read under Noise (many messages at once).
# 256 KiB -> 512 KiB: a 1 GiB get used 0.14 s less CPU (5 alternated runs,
# 3087 -> 2943 ms median); 1 MiB gave no more. A read is held only while the
# receive loop takes its messages; a partial one at its end is copied out.
READ_CHUNK = 512 * 1024


# -- P1 ----------------------------------------------------------------------
# Upstream NoiseTransportReadWriter.read_msg does read_exactly(2) then
# read_exactly(len) on the socket: several recv() calls per message, then
# copies the ciphertext because noise.NoiseConnection.decrypt only takes
# bytes. We read up to READ_CHUNK bytes at once, cut as many messages from it
# as it holds, and decrypt each in place with the session's CipherState (the
# exact call NoiseConnection.decrypt makes, same error on a bad tag). A
# message that lies whole in the last read is decrypted from it where it is;
# only one that spans two reads is gathered in a small buffer (issue 12:
# before, every byte was first appended to one buffer).


async def _noise_read_msg(self: Any, prefix_encoded: bool = False) -> bytes:
    d = self.__dict__
    cur: bytes = d.get("_p2ps_rcur", b"")
    pos: int = d.get("_p2ps_rpos", 0)
    part: bytearray | None = d.get("_p2ps_rbuf")  # a message that spans reads
    conn = self.read_writer.read_write_closer
    while True:
        if part:
            have = len(part)
            need = 2 - have if have < 2 else 2 + ((part[0] << 8) | part[1]) - have
            if need == 0:
                break
            if pos < len(cur):
                take = min(need, len(cur) - pos)
                with memoryview(cur) as view:
                    part += view[pos : pos + take]
                pos += take
                continue
        else:
            avail = len(cur) - pos
            if avail >= 2:
                size = (cur[pos] << 8) | cur[pos + 1]
                if avail >= 2 + size:
                    _keep_rest(d, cur, pos + 2 + size)
                    return _open_msg(self, cur, pos, size, prefix_encoded)
            if avail:
                part = d["_p2ps_rbuf"] = bytearray(cur[pos:])  # at most one message
                pos = len(cur)
                continue
        d["_p2ps_rcur"], d["_p2ps_rpos"] = b"", 0
        if part is None:
            part = d["_p2ps_rbuf"] = bytearray()
        data = await conn.read(READ_CHUNK)
        if not data:
            # Same numbers as upstream's read_exactly of the length or body.
            have = len(part)
            expected, got = (2, have) if have < 2 else ((part[0] << 8) | part[1], have - 2)
            raise IncompleteReadError(
                f"Connection closed during read operation: expected {expected} bytes but received {got} bytes",
                expected_bytes=expected,
                received_bytes=got,
            )
        cur, pos = data, 0
    # A whole message assembled in ``part``; what follows it stays in ``cur``.
    _keep_rest(d, cur, pos)
    try:
        return _open_msg(self, part, 0, len(part) - 2, prefix_encoded)
    finally:
        part.clear()  # consumed even if it fails to decrypt, as upstream


def take_ready_msg(rw: Any) -> bytes | None:
    """The next message's plaintext if it lies whole in the last read (and
    is not empty), decrypted without awaiting anything; else None, and the
    caller awaits ``read_msg`` as before (issue 12: two coroutine layers
    per 64 KiB message less for P10's loop). Only for a reader whose
    ``read_msg`` is P1's; the state and the errors are P1's."""
    d = rw.__dict__
    if d.get("_p2ps_rbuf"):
        return None  # a message is being gathered across reads
    cur: bytes = d.get("_p2ps_rcur", b"")
    pos: int = d.get("_p2ps_rpos", 0)
    if len(cur) - pos < 2:
        return None
    size = (cur[pos] << 8) | cur[pos + 1]
    if size <= _TAG or len(cur) - pos < 2 + size:
        return None  # not whole yet; or empty, which upstream's read reports as the end
    _keep_rest(d, cur, pos + 2 + size)
    return _open_msg(rw, cur, pos, size, False)


def _keep_rest(d: dict[str, Any], cur: bytes, pos: int) -> None:
    """Keep what of the last read ``cur`` lies from ``pos`` on for the next
    message (nothing, if the read is used up)."""
    d["_p2ps_rcur"], d["_p2ps_rpos"] = (b"", 0) if pos == len(cur) else (cur, pos)


def _open_msg(self: Any, data: bytes | bytearray, pos: int, size: int, prefix_encoded: bool) -> bytes:
    """Decrypt the message of ``size`` bytes at ``data[pos + 2:]`` (after its
    length prefix) with the session's cipher, without copying it first.

    Once the handshake is done the session's receiving CipherState is found
    once and kept; each message then makes the calls the noise library's
    ``decrypt_with_ad`` -> ``CryptographyCipher.decrypt`` would (nonce 4 zero
    bytes + n little-endian, n += 1 only on success, the same errors),
    without their three Python frames."""
    skip = pos + 2 + (len(self.prefix) if prefix_encoded else 0)
    end = pos + 2 + size
    d = self.__dict__
    cs = d.get("_p2ps_rx_cs")
    if cs is None:
        cs = direct_decrypt(self)
        if cs is None:
            return bytes(self.decrypt(bytes(data[skip:end])))
        d["_p2ps_rx_cs"] = cs  # the session's own object for its whole life
    try:
        with memoryview(data) as view, view[skip:end] as body:
            aead = cs.cipher.cipher
            if type(cs.cipher) is not ChaCha20Cipher or type(aead) is not ChaCha20Poly1305:
                return bytes(cs.decrypt_with_ad(None, body))
            if cs.n == MAX_NONCE:
                raise NoiseMaxNonceError("Nonce has depleted!")
            plain = aead.decrypt(_NONCE_PAD + cs.n.to_bytes(8, "little"), body, None)
            cs.n += 1
            return plain
    except InvalidTag:
        raise NoiseInvalidMessage("Failed authentication of message") from None
