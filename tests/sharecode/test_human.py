from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pshare.sharecode import (
    HUMAN_ALPHABET,
    ShareCodeError,
    dht_key,
    new_human_code,
    normalize_human_code,
)


def test_alphabet_is_unambiguous() -> None:
    assert len(HUMAN_ALPHABET) == len(set(HUMAN_ALPHABET)) == 30
    assert not set("01OILU") & set(HUMAN_ALPHABET)


def test_new_codes() -> None:
    codes = {new_human_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == 12
        assert set(code) <= set(HUMAN_ALPHABET)
        assert normalize_human_code(code) == code


def test_normalisation() -> None:
    assert normalize_human_code("abcd-efgh-jkmn") == "ABCDEFGHJKMN"
    assert normalize_human_code("-2345-6789-") == "23456789"
    assert normalize_human_code("z" * 64) == "Z" * 64


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", "share code is 0 characters, expected 8 to 64"),
        ("ABCDEFG", "share code is 7 characters, expected 8 to 64"),
        ("----ABCDEFG----", "share code is 7 characters, expected 8 to 64"),
        ("A" * 65, "share code is 65 characters, expected 8 to 64"),
        ("A-" * 65, "share code too long (130 characters, at most 64)"),
        (
            "ABCDEFGO",
            f"share code has a character outside {HUMAN_ALPHABET} at position 8",
        ),
        (
            "0BCDEFGH",
            f"share code has a character outside {HUMAN_ALPHABET} at position 1",
        ),
        (
            "ABiDEFGH",
            f"share code has a character outside {HUMAN_ALPHABET} at position 3",
        ),
        (
            "ABCDEFGl",
            f"share code has a character outside {HUMAN_ALPHABET} at position 8",
        ),
        (
            "ABCDuFGH",
            f"share code has a character outside {HUMAN_ALPHABET} at position 5",
        ),
        (
            "ABCD FGH",
            f"share code has a character outside {HUMAN_ALPHABET} at position 5",
        ),
        (
            "ABCDÉFGH",
            f"share code has a character outside {HUMAN_ALPHABET} at position 5",
        ),
    ],
)
def test_bad_codes(code: str, message: str) -> None:
    with pytest.raises(ShareCodeError) as info:
        normalize_human_code(code)
    assert str(info.value) == message
    with pytest.raises(ShareCodeError):
        dht_key(code)


def test_dht_key_known_answer() -> None:
    expected = hashlib.sha256(b"p2pshare/provider/v1\x00ABCDEFGHJKMN").digest()
    assert dht_key("ABCDEFGHJKMN") == expected
    assert dht_key("abcd-efgh-jkmn") == expected
    assert len(expected) == 32
    assert dht_key("ABCDEFGHJKMN") != hashlib.sha256(b"ABCDEFGHJKMN").digest()


@given(st.text(alphabet=HUMAN_ALPHABET, min_size=8, max_size=64))
def test_dht_key_hides_the_code(code: str) -> None:
    key = dht_key(code)
    assert len(key) == 32
    assert code.encode() not in key
    assert dht_key(code.lower()) == key
