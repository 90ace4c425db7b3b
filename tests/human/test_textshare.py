"""Which shares are texts, and what of a text reaches the terminal."""

from __future__ import annotations

from p2pshare.node.textshare import MAX_TEXT_BYTES, TEXT_MARK, is_text_share, printable


def test_only_one_small_top_level_file_under_the_mark_is_a_text() -> None:
    assert is_text_share(TEXT_MARK, [("message-ab12.txt", 10)])
    assert not is_text_share("holiday photos", [("message-ab12.txt", 10)])
    assert not is_text_share(TEXT_MARK, [("a.txt", 1), ("b.txt", 1)])
    assert not is_text_share(TEXT_MARK, [("dir/a.txt", 1)])
    assert not is_text_share(TEXT_MARK, [("big.txt", MAX_TEXT_BYTES + 1)])


def test_printable_keeps_lines_and_tabs_and_defuses_controls() -> None:
    assert printable("a\nb\tc é ✓") == "a\nb\tc é ✓"
    assert printable("\x1b[2J\x07\x7f\x9b") == "\ufffd[2J\ufffd\ufffd\ufffd"
