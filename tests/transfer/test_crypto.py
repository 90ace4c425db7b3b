"""Key derivation, proofs and chunk sealing: what tampering each one catches."""

from __future__ import annotations

import os

import pytest

from p2pshare.transfer import crypto
from p2pshare.transfer.gathered import Gathered, Joiner

KEY = bytes(range(32))


def test_subkeys_are_distinct_deterministic_and_hidden() -> None:
    a = crypto.ShareKeys.derive(KEY)
    assert a == crypto.ShareKeys.derive(KEY)
    assert len(a.share_id) == 16 and len(a.auth_key) == 32 and len(a.data_key) == 32
    assert len({a.share_id, a.auth_key[:16], a.data_key[:16], KEY[:16]}) == 4
    assert a.auth_key != a.data_key
    assert crypto.ShareKeys.derive(os.urandom(32)).share_id != a.share_id
    text = repr(a)
    assert a.auth_key.hex() not in text and a.data_key.hex() not in text and repr(a.auth_key) not in text


@pytest.mark.parametrize("bad", [b"", b"x" * 31, b"x" * 33])
def test_key_length_checked(bad: bytes) -> None:
    with pytest.raises(ValueError):
        crypto.ShareKeys.derive(bad)


def _proof(keys: crypto.ShareKeys, **kw: object) -> bytes:
    args: dict[str, object] = dict(
        sharer=False, nonce_r=b"r" * 32, nonce_s=b"s" * 32, sharer_peer_id=b"S", receiver_peer_id=b"R"
    )
    args.update(kw)
    return crypto.proof(keys, **args)  # type: ignore[arg-type]


def test_proof_binds_role_nonces_and_both_peer_ids() -> None:
    keys = crypto.ShareKeys.derive(KEY)
    base = _proof(keys)
    variants = [
        _proof(keys, sharer=True),
        _proof(keys, nonce_r=b"x" * 32),
        _proof(keys, nonce_s=b"x" * 32),
        _proof(keys, sharer_peer_id=b"X"),
        _proof(keys, receiver_peer_id=b"X"),
        # length prefixes: moving a byte between the two IDs changes the proof
        _proof(keys, sharer_peer_id=b"SR", receiver_peer_id=b""),
        _proof(crypto.ShareKeys.derive(os.urandom(32))),
    ]
    assert base == _proof(keys)
    assert all(v != base for v in variants)
    assert crypto.proofs_equal(base, _proof(keys))
    assert not crypto.proofs_equal(base, variants[0])


def test_manifest_sealing() -> None:
    keys = crypto.ShareKeys.derive(KEY)
    nonce, ct = crypto.seal_manifest(keys, b"{}")
    assert crypto.open_manifest(keys, nonce, ct) == b"{}"
    with pytest.raises(crypto.DecryptError):
        crypto.open_manifest(crypto.ShareKeys.derive(os.urandom(32)), nonce, ct)
    with pytest.raises(crypto.DecryptError):
        crypto.open_manifest(keys, nonce, ct[:-1] + bytes([ct[-1] ^ 1]))


DIGEST = b"d" * 32


@pytest.fixture
def cipher() -> crypto.ChunkCipher:
    return crypto.ChunkCipher(crypto.ShareKeys.derive(KEY), DIGEST)


def test_chunk_round_trip_with_fresh_nonces(cipher: crypto.ChunkCipher) -> None:
    n1, c1 = cipher.seal(0, 3, False, b"data")
    n2, c2 = cipher.seal(0, 3, False, b"data")
    assert n1 != n2 and c1 != c2
    assert cipher.open(0, 3, False, n1, c1) == b"data"


def test_tampered_chunk_fails(cipher: crypto.ChunkCipher) -> None:
    nonce, ct = cipher.seal(0, 0, False, os.urandom(1000))
    for pos in (0, 500, len(ct) - 1):
        bad = bytearray(ct)
        bad[pos] ^= 0x01
        with pytest.raises(crypto.DecryptError):
            cipher.open(0, 0, False, nonce, bytes(bad))
    with pytest.raises(crypto.DecryptError):
        cipher.open(0, 0, False, bytes([nonce[0] ^ 1]) + nonce[1:], ct)


def test_swapped_chunks_fail(cipher: crypto.ChunkCipher) -> None:
    n0, c0 = cipher.seal(0, 0, False, b"first")
    n1, c1 = cipher.seal(0, 1, True, b"second")
    with pytest.raises(crypto.DecryptError):
        cipher.open(0, 0, False, n1, c1)
    with pytest.raises(crypto.DecryptError):
        cipher.open(0, 1, True, n0, c0)
    with pytest.raises(crypto.DecryptError):  # same chunk index, other file
        cipher.open(1, 0, False, n0, c0)


def test_truncation_flag_bound(cipher: crypto.ChunkCipher) -> None:
    """Claiming a middle chunk is the last one (cutting the file short) fails."""
    nonce, ct = cipher.seal(0, 1, False, b"middle")
    with pytest.raises(crypto.DecryptError):
        cipher.open(0, 1, True, nonce, ct)


def test_replay_from_other_share_or_version_fails(cipher: crypto.ChunkCipher) -> None:
    nonce, ct = cipher.seal(0, 0, True, b"x")
    other_share = crypto.ChunkCipher(crypto.ShareKeys.derive(os.urandom(32)), DIGEST)
    other_version = crypto.ChunkCipher(crypto.ShareKeys.derive(KEY), b"e" * 32)
    for c in (other_share, other_version):
        with pytest.raises(crypto.DecryptError):
            c.open(0, 0, True, nonce, ct)


def _split(data: bytes, cuts: list[int]) -> Gathered:
    """``data`` as a Gathered of separate ``bytes`` objects, viewed like received pieces."""
    edges = [0, *sorted(set(cuts)), len(data)]
    return Gathered([memoryview(bytes(data[a:b])) for a, b in zip(edges, edges[1:], strict=False) if b > a])


def test_a_chunk_in_pieces_opens_like_the_joined_chunk(cipher: crypto.ChunkCipher) -> None:
    import random

    rng = random.Random(3)
    plain = os.urandom(300_000)
    nonce, ct = cipher.seal(2, 5, True, plain)
    n = len(ct)
    for cuts in ([], [1], [n - 16], [n - 1], [n - 8, n - 3], [65_519, 131_038, n - 7], rng.sample(range(1, n), 40)):
        out = bytearray(len(plain))
        cipher.open_into(2, 5, True, nonce, _split(ct, cuts), memoryview(out))
        assert out == plain
        assert cipher.open(2, 5, True, nonce, _split(ct, cuts)) == plain


def test_a_tampered_chunk_in_pieces_fails(cipher: crypto.ChunkCipher) -> None:
    nonce, ct = cipher.seal(0, 0, False, os.urandom(100_000))
    n = len(ct)
    out = memoryview(bytearray(n - crypto.TAG_BYTES))
    for pos in (0, 65_519, n - 17, n - 16, n - 9, n - 1):  # the tag split across two pieces too
        bad = bytearray(ct)
        bad[pos] ^= 0x01
        with pytest.raises(crypto.DecryptError):
            cipher.open_into(0, 0, False, nonce, _split(bytes(bad), [65_519, n - 9]), out)
    with pytest.raises(crypto.DecryptError):  # another chunk's position (AAD)
        cipher.open_into(0, 1, False, nonce, _split(ct, [65_519]), out)
    with pytest.raises(ValueError):
        cipher.open_into(0, 0, False, nonce, _split(ct, [65_519]), out[:-1])


def test_a_joiner_is_reused_across_bodies_of_any_size(cipher: crypto.ChunkCipher) -> None:
    """One joiner opens chunk after chunk, larger and smaller, split
    anywhere; a view it handed out earlier stays readable after it grows."""
    joiner = Joiner()
    first = joiner.join(_split(b"abcdef", [2, 3]))
    assert bytes(first) == b"abcdef"
    for size, cuts in ((100_000, [1, 65_519]), (300_000, [65_519, 131_038]), (5_000, []), (300_000, [7])):
        plain = os.urandom(size)
        nonce, ct = cipher.seal(1, size, False, plain)
        out = bytearray(size)
        cipher.open_into(1, size, False, nonce, _split(ct, cuts), memoryview(out), joiner)
        assert out == plain
    assert bytes(first) == b"abcdef"  # the first buffer, still held by this view
    nonce, ct = cipher.seal(0, 0, False, b"x" * 1000)
    bad = bytearray(ct)
    bad[-1] ^= 1
    with pytest.raises(crypto.DecryptError):
        cipher.open_into(0, 0, False, nonce, _split(bytes(bad), [500]), memoryview(bytearray(1000)), joiner)
