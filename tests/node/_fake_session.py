"""A real py-libp2p ``SecureSession`` over a fake Noise connection that
hands out the given decrypted messages, then EOF (``b""``)."""

from __future__ import annotations

from typing import Any

from libp2p.security.secure_session import SecureSession


def fake_session(msgs: list[bytes]) -> Any:
    class Conn:
        def __init__(self) -> None:
            self.q = list(msgs)

        async def read_msg(self) -> bytes:
            return self.q.pop(0) if self.q else b""

    s = SecureSession.__new__(SecureSession)
    s.conn = Conn()
    s._reset_internal_buffer()
    return s
