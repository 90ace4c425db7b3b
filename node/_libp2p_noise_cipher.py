"""A Noise session's CipherStates, when calling them directly is exactly what
py-libp2p 0.8.1 would do: the receiving one for P1 (``_libp2p_noise_rx``),
the sending one for P2 (``_libp2p_speed``).

Upstream's ``NoiseTransportReadWriter.encrypt``/``decrypt`` are looked up
here at import, before ``_libp2p_patches.apply`` can replace anything.
"""

from __future__ import annotations

from typing import Any

from libp2p.security.noise import io as noise_io
from noise.connection import NoiseConnection  # type: ignore[import-untyped]

__all__ = ["session_cipher", "direct_decrypt"]

UPSTREAM_TRANSPORT_DECRYPT = noise_io.NoiseTransportReadWriter.decrypt
UPSTREAM_TRANSPORT_ENCRYPT = noise_io.NoiseTransportReadWriter.encrypt


def session_cipher(rw: Any, sending: bool) -> Any:
    """The session's sending or receiving CipherState, if calling it (or,
    sending, its AEAD) directly is exactly what upstream would do."""
    state = rw.noise_state
    if type(state) is not NoiseConnection or not state.handshake_finished:
        return None
    upstream = UPSTREAM_TRANSPORT_ENCRYPT if sending else UPSTREAM_TRANSPORT_DECRYPT
    if getattr(type(rw), "encrypt" if sending else "decrypt") is not upstream:
        return None
    proto = state.noise_protocol
    cs = proto.cipher_state_encrypt if sending else proto.cipher_state_decrypt
    return cs if cs is not None and cs.has_key() else None


def direct_decrypt(rw: Any) -> Any:
    """The session's receiving CipherState, if decrypting through it is exact."""
    return session_cipher(rw, sending=False)
