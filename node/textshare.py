"""``share --text``: a line of text sent as a share, printed by ``get``. Pure.

People send a URL, a password or an address as often as a file. The text
travels as one small file in an ordinary share (same encryption, same
verification, no protocol change), marked by the manifest's description;
``get`` recognises the mark, prints the text and removes the file. An older
receiver simply gets the file.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MAX_TEXT_BYTES", "TEXT_MARK", "is_text_share", "printable"]

#: The manifest description that marks a text share.
TEXT_MARK = "p2pshare:text/plain;charset=utf-8"
#: Larger texts are files: share them as one.
MAX_TEXT_BYTES = 1 << 20


def is_text_share(description: str, files: Sequence[tuple[str, int]]) -> bool:
    """One top-level file of at most :data:`MAX_TEXT_BYTES`, under the mark."""
    return description == TEXT_MARK and len(files) == 1 and "/" not in files[0][0] and files[0][1] <= MAX_TEXT_BYTES


def printable(text: str) -> str:
    """The text without terminal control characters (a sharer must not be
    able to move the cursor or retitle the window): newlines and tabs stay,
    other C0/C1 controls and DEL become U+FFFD."""
    return "".join(ch if ch in "\n\t" or not (ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0) else "\ufffd" for ch in text)
