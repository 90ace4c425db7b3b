"""Short codes a person can say: ``4127-guitar-ocean-velvet``.

A short code is a 4-digit *number* and three words from the EFF short word
list (``data/eff_short_wordlist_1.txt``, 1,295 words). The two parts do
different jobs, and that split is the whole security argument:

- the **number** only *finds* the sharer: it is hashed, with a coarse time
  window, into a DHT provider key (:func:`window_keys`). Anyone may learn it.
- the **words** are the password of a PAKE run with the sharer
  (``p2pshare.node.shortcode``). They never reach the DHT or the wire in any
  form that can be tested offline: each guess costs one online attempt, and
  the sharer refuses the code after a few failed ones.

Three words give 1,295**3 ~ 2.2e9 (~31 bits) per attempt. The number space
(9,000 values) is small on purpose (it has to be said aloud); two sharers
whose live codes share a number and an hour are both found and both tried,
see the README's threat model.

Pure: no trio, no libp2p.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import secrets
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .errors import ShortCodeError

__all__ = [
    "NUMBER_MAX",
    "NUMBER_MIN",
    "SKEW",
    "WINDOW",
    "WORDLIST_SIZE",
    "WORDS",
    "ShortCode",
    "looks_like_short_code",
    "new_short_code",
    "parse_short_code",
    "window_key",
    "window_keys",
    "wordlist",
]

NUMBER_MIN = 1000  # always 4 digits: a dropped digit is caught before any network
NUMBER_MAX = 9999
WORDS = 3  # words per code: 1,295**3 ~ 2**31 per online guess
WORDLIST_SIZE = 1295  # the EFF short list #1 without "yo-yo" (see data/*.LICENSE.txt)
WINDOW = 3600  # seconds: the DHT key changes every hour (a coarse, wall-clock window)
SKEW = 300  # seconds of clock difference between two peers that still meet
_MAX_TEXT = 200  # longest text worth parsing (4 digits + 3 words of <= 5 letters)
_SEPARATORS = re.compile(r"[\s\-_.]+")
_KEY_PREFIX = b"p2pshare/shortcode/v1\x00"


@cache
def wordlist() -> tuple[str, ...]:
    """The 1,295 words, in the published order (loaded once from package data)."""
    text = resources.files(__package__).joinpath("data/eff_short_wordlist_1.txt").read_text("ascii")
    words = tuple(w.strip() for w in text.splitlines() if w.strip())
    if len(words) != WORDLIST_SIZE or len(set(words)) != WORDLIST_SIZE:
        raise RuntimeError("the vendored word list is damaged")  # a broken install, not user input
    return words


@cache
def _word_set() -> frozenset[str]:
    return frozenset(wordlist())


@dataclass(frozen=True)
class ShortCode:
    """A parsed short code. ``str()`` is its canonical spelling."""

    number: int
    words: tuple[str, ...]

    def __str__(self) -> str:
        return "-".join((str(self.number), *self.words))

    @property
    def password(self) -> bytes:
        """What the PAKE runs on: the canonical code (the number is public; it
        costs nothing to bind it too)."""
        return str(self).encode("ascii")

    @property
    def redacted(self) -> str:
        """The number alone, for messages and logs: the words are the secret."""
        return f"{self.number}-…"


def new_short_code() -> ShortCode:
    """A fresh random short code (``secrets``: the words are a password)."""
    words = wordlist()
    number = NUMBER_MIN + secrets.randbelow(NUMBER_MAX - NUMBER_MIN + 1)
    return ShortCode(number, tuple(secrets.choice(words) for _ in range(WORDS)))


def looks_like_short_code(text: str) -> bool:
    """True when ``text`` is meant as a short code: it starts with a digit
    and has separators (or is digits only).

    A v1 code is base64 of JSON (it starts with ``e``) and a legacy code's
    human part uses letters too, so a leading digit is unambiguous enough to
    route the text to :func:`parse_short_code`, whose errors then say what a
    short code should look like.
    """
    stripped = text.strip()
    if not stripped or not stripped[0].isdigit() or ":" in stripped:
        return False
    # A bare run of letters and digits ("4ZBEMQFSBY8R", a share's 12-character
    # name) is not a short code; digits alone are a short code missing its words.
    return stripped.isdigit() or not stripped.isalnum()


def parse_short_code(text: str) -> ShortCode:
    """Parse ``4127-guitar-ocean-velvet`` (any case; ``-``, spaces, ``_`` or
    ``.`` between the parts). Every problem is one ``ShortCodeError`` line
    that says which part is wrong, so a typo never costs an online attempt."""
    if not isinstance(text, str):
        raise ShortCodeError(f"short code must be text, got {type(text).__name__}")
    if len(text) > _MAX_TEXT:
        raise ShortCodeError(f"short code too long: {len(text)} characters")
    parts = [p for p in _SEPARATORS.split(text.strip().lower()) if p]
    if not parts:
        raise ShortCodeError("short code is empty")
    head, words = parts[0], parts[1:]
    if not head.isascii() or not head.isdigit() or len(head) != 4 or not NUMBER_MIN <= int(head) <= NUMBER_MAX:
        raise ShortCodeError(f"a short code starts with a 4-digit number ({NUMBER_MIN}-{NUMBER_MAX}), like 4127-…")
    number = int(head)
    if len(words) != WORDS:
        raise ShortCodeError(
            f"short code {number}-… has {len(words)} word{'' if len(words) == 1 else 's'} after the number, expected {WORDS}"
        )
    known = _word_set()
    for pos, word in enumerate(words, 1):
        if word not in known:
            near = difflib.get_close_matches(word, wordlist(), n=1, cutoff=0.6) if word.isascii() else []
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ShortCodeError(f"word {pos} of short code {number}-… is not in the word list{hint}")
    return ShortCode(number, tuple(words))


def window_key(number: int, window: int) -> bytes:
    """The 32-byte DHT key of ``number`` during time window ``window``.

    Domain-separated SHA-256 of the number and the window index only: the
    words never reach the DHT. The window keeps the number space reusable
    (a code from yesterday never shares a key with one of today) and lets
    provider records of dead codes age out of the way.
    """
    return hashlib.sha256(_KEY_PREFIX + f"{number}/{window}".encode("ascii")).digest()


def window_keys(number: int, start: float, end: float, *, window: int = WINDOW, skew: float = SKEW) -> list[bytes]:
    """Keys covering wall-clock times ``[start - skew, end + skew]``.

    The sharer advertises under all of them for its code's lifetime; a
    receiver asks for those of ``[now, now]`` (one key, two near a window's
    edge), so peers whose clocks differ by up to ``skew`` still meet.
    """
    first, last = int((start - skew) // window), int((end + skew) // window)
    return [window_key(number, w) for w in range(first, last + 1)]
