"""The short-code parser and generator, and the DHT keys of a number."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pshare.sharecode import ShareCodeError, ShortCodeError
from p2pshare.sharecode.short import (
    NUMBER_MAX,
    NUMBER_MIN,
    SKEW,
    WINDOW,
    WORDLIST_SIZE,
    WORDS,
    ShortCode,
    looks_like_short_code,
    new_short_code,
    parse_short_code,
    window_key,
    window_keys,
    wordlist,
)


def test_wordlist_is_the_vendored_eff_short_list() -> None:
    words = wordlist()
    assert len(words) == len(set(words)) == WORDLIST_SIZE
    assert words[:3] == ("acid", "acorn", "acre") and words[-1] == "zoom"
    assert all(w.isascii() and w.isalpha() and w.islower() and 3 <= len(w) <= 5 for w in words)


def test_new_codes_parse_back_and_differ() -> None:
    codes = [new_short_code() for _ in range(200)]
    assert len({str(c) for c in codes}) == 200
    for code in codes:
        assert NUMBER_MIN <= code.number <= NUMBER_MAX and len(code.words) == WORDS
        assert parse_short_code(str(code)) == code


@pytest.mark.parametrize(
    "text",
    [
        "4127-acid-zoom-yoga",
        "  4127 acid zoom yoga\n",
        "4127-ACID-Zoom-yoga",
        "4127--acid_zoom.yoga",
    ],
)
def test_spellings_a_person_may_type(text: str) -> None:
    assert parse_short_code(text) == ShortCode(4127, ("acid", "zoom", "yoga"))
    assert str(parse_short_code(text)) == "4127-acid-zoom-yoga"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "short code is empty"),
        ("412-acid-acorn-acre", "4-digit number"),
        ("41270-acid-acorn-acre", "4-digit number"),
        ("0999-acid-acorn-acre", "4-digit number"),
        ("4127-acid-acorn", "has 2 words after the number, expected 3"),
        ("4127-acid-acorn-acre-afar", "has 4 words"),
        ("4127-acid-acorm-acre", "word 2 of short code 4127-… is not in the word list (did you mean 'acorn'?)"),
        ("4127-acid-qqqqqq-acre", "word 2 of short code 4127-… is not in the word list"),
        ("4127-acid-acörn-acre", "word 2"),
        ("4127" + "-acid" * 60, "too long"),
    ],
)
def test_typos_are_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(ShareCodeError) as err:
        parse_short_code(text)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, ShortCodeError)  # the CLI's advice differs from a long code's


def test_errors_never_echo_the_words() -> None:
    with pytest.raises(ShareCodeError) as err:
        parse_short_code("4127-acid-acorn")
    assert "acid" not in str(err.value) and "acorn" not in str(err.value)


@given(st.text(max_size=300))
def test_any_text_parses_or_raises_share_code_error(text: str) -> None:
    try:
        parse_short_code(text)
    except ShareCodeError:
        pass


def test_detection_routes_short_codes_only() -> None:
    assert looks_like_short_code("4127-acid-acorn-acre") and looks_like_short_code(" 4127")
    assert not looks_like_short_code("eyJ2IjoxfQ")  # v1: base64 of JSON
    assert not looks_like_short_code("87TW7H8C6FSS:00:127.0.0.1:1")  # legacy
    assert not looks_like_short_code("")
    assert looks_like_short_code("4127")  # the words are missing: say so
    assert not looks_like_short_code("4ZBEMQFSBY8R")  # a share's 12-character name, not a short code


def test_window_keys_cover_the_life_and_the_clock_skew() -> None:
    start = 100 * WINDOW + 1000.0
    keys = window_keys(4127, start, start + 3600)
    assert keys == [window_key(4127, w) for w in (100, 101)]
    # A receiver near a window's edge (within the skew) asks both windows.
    assert window_keys(4127, 101 * WINDOW - 10, 101 * WINDOW - 10) == [window_key(4127, 100), window_key(4127, 101)]
    assert window_keys(4127, 100 * WINDOW + SKEW + 1, 100 * WINDOW + SKEW + 1) == [window_key(4127, 100)]
    # Every receiver moment inside the life meets one of the sharer's keys.
    for t in range(int(start), int(start) + 3600, 97):
        assert set(window_keys(4127, t, t)) & set(keys)


def test_keys_depend_on_number_and_window_only() -> None:
    assert window_key(4127, 5) != window_key(4128, 5) != window_key(4127, 6)
    assert len(window_key(4127, 5)) == 32
