from __future__ import annotations

import base58
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pshare.sharecode import (
    ShareCodeError,
    is_valid_peer_id,
    peer_id_to_bytes,
    validate_peer_id,
)

from . import ids


@pytest.mark.parametrize("pid", ids.ALL)
def test_real_ids_are_valid(pid: str) -> None:
    raw = peer_id_to_bytes(pid)
    assert base58.b58encode(raw).decode() == pid
    assert validate_peer_id(pid) == pid
    assert is_valid_peer_id(pid)


def test_multihash_shapes() -> None:
    ed = peer_id_to_bytes(ids.ED25519[0])
    assert ed[:6] == b"\x00\x24\x08\x01\x12\x20" and len(ed) == 38
    sk = peer_id_to_bytes(ids.SECP256K1[0])
    assert sk[:6] == b"\x00\x25\x08\x02\x12\x21" and len(sk) == 39
    for pid in ids.RSA + ids.ECDSA_P256:
        assert peer_id_to_bytes(pid)[:2] == b"\x12\x20"


def _b58(raw: bytes) -> str:
    return base58.b58encode(raw).decode()


ED_KEY = bytes(range(32))
BAD_IDS = [
    ("", "bad peer ID: empty"),
    ("x" * 129, "bad peer ID: too long (129 characters)"),
    ("12D3KooW0", "bad peer ID: not base58btc"),  # '0' not in the alphabet
    ("QmOOOO", "bad peer ID: not base58btc"),
    ("12D3 KooW", "bad peer ID: not base58btc"),
    ("2", "bad peer ID: too short for a multihash"),
    (_b58(b"\x13\x20" + bytes(32)), "bad peer ID: unsupported multihash code 0x13"),
    (_b58(b"\x12\x20" + bytes(31)), "bad peer ID: sha2-256 multihash is not 32 bytes"),
    (_b58(b"\x12\x14" + bytes(20)), "bad peer ID: sha2-256 multihash is not 32 bytes"),
    (_b58(b"\x12\x20" + bytes(33)), "bad peer ID: sha2-256 multihash is not 32 bytes"),
    (_b58(b"\x00\x2b" + bytes(43)), "bad peer ID: identity multihash has a bad length"),
    (
        _b58(b"\x00\x24\x08\x01\x12\x20" + ED_KEY[:31]),
        "bad peer ID: identity multihash has a bad length",
    ),
    (
        _b58(b"\x00\x03\x08\x01\x12"),
        "bad peer ID: identity multihash does not hold a protobuf public key",
    ),
    (
        _b58(b"\x00\x24\x10\x01\x12\x20" + ED_KEY),
        "bad peer ID: identity multihash does not hold a protobuf public key",
    ),
    (
        _b58(b"\x00\x24\x08\x01\x1a\x20" + ED_KEY),
        "bad peer ID: identity multihash does not hold a protobuf public key",
    ),
    (
        _b58(b"\x00\x23\x08\x01\x12\x1f" + ED_KEY[:31]),
        "bad peer ID: Ed25519 public key is 31 bytes, expected 32",
    ),
    (
        _b58(b"\x00\x24\x08\x01\x12\x21" + ED_KEY),
        "bad peer ID: public key length does not match its protobuf header",
    ),
    (
        _b58(b"\x00\x25\x08\x02\x12\x21\x04" + ED_KEY),
        "bad peer ID: secp256k1 public key is not a 33-byte compressed point",
    ),
    (
        _b58(b"\x00\x24\x08\x00\x12\x20" + ED_KEY),
        "bad peer ID: unsupported key type 0 in identity peer ID",
    ),
    (
        _b58(b"\x00\x24\x08\x03\x12\x20" + ED_KEY),
        "bad peer ID: unsupported key type 3 in identity peer ID",
    ),
]


@pytest.mark.parametrize(("pid", "message"), BAD_IDS)
def test_bad_ids(pid: str, message: str) -> None:
    with pytest.raises(ShareCodeError) as info:
        peer_id_to_bytes(pid)
    assert str(info.value) == message
    assert not is_valid_peer_id(pid)


def test_non_string() -> None:
    with pytest.raises(ShareCodeError, match="^bad peer ID: expected a string, got bytes$"):
        peer_id_to_bytes(b"12D3KooW")  # type: ignore[arg-type]


@given(st.binary(min_size=32, max_size=32))
def test_any_ed25519_key_gives_a_valid_id(key: bytes) -> None:
    pid = ids.ed25519_id(key)
    assert pid.startswith("12D3KooW")
    assert peer_id_to_bytes(pid)[6:] == key


def test_agrees_with_libp2p() -> None:
    """Our validator and py-libp2p agree on real IDs (slow import: one test)."""
    from libp2p.crypto.ed25519 import create_new_key_pair as ed25519
    from libp2p.crypto.secp256k1 import create_new_key_pair as secp256k1
    from libp2p.peer.id import ID

    fresh = [str(ID.from_pubkey(f().public_key)) for f in (ed25519, ed25519, secp256k1)]
    for pid in list(ids.ALL) + fresh:
        assert is_valid_peer_id(pid), pid
        parsed = ID.from_base58(pid)
        assert parsed.to_base58() == pid
        assert parsed.to_bytes() == peer_id_to_bytes(pid)
    for pid in ids.ED25519 + ids.SECP256K1:
        # Identity IDs inline the key: libp2p can extract it, so it is well formed.
        assert ID.from_base58(pid).extract_public_key() is not None
