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
from libp2p.io.exceptions import IncompleteReadError
from noise.exceptions import NoiseInvalidMessage  # type: ignore[import-untyped]

from ._libp2p_speed import _direct_decrypt

__all__ = ["READ_CHUNK", "_noise_read_msg"]

# Bytes pulled from the socket per read under Noise (many messages at once).
READ_CHUNK = 256 * 1024


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
                    d["_p2ps_rcur"], d["_p2ps_rpos"] = (b"", 0) if pos + 2 + size == len(cur) else (cur, pos + 2 + size)
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
    d["_p2ps_rcur"], d["_p2ps_rpos"] = (b"", 0) if pos == len(cur) else (cur, pos)
    try:
        return _open_msg(self, part, 0, len(part) - 2, prefix_encoded)
    finally:
        part.clear()  # consumed even if it fails to decrypt, as upstream


def _open_msg(self: Any, data: bytes | bytearray, pos: int, size: int, prefix_encoded: bool) -> bytes:
    """Decrypt the message of ``size`` bytes at ``data[pos + 2:]`` (after its
    length prefix) with the session's cipher, without copying it first."""
    skip = pos + 2 + (len(self.prefix) if prefix_encoded else 0)
    end = pos + 2 + size
    cipher = _direct_decrypt(self)
    if cipher is None:
        return bytes(self.decrypt(bytes(data[skip:end])))
    try:
        with memoryview(data) as view, view[skip:end] as body:
            return bytes(cipher.decrypt_with_ad(None, body))
    except InvalidTag:
        raise NoiseInvalidMessage("Failed authentication of message") from None
