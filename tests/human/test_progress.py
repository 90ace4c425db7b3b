"""Progress formatting, pure: widths, units, rate and ETA with fake time."""

from __future__ import annotations

import pytest

from p2pshare.node import progress
from p2pshare.node.progress import FileCursor, RateMeter, format_bytes, format_eta, format_rate, format_seconds, render

MiB = 1 << 20


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (5 * MiB, "5.0 MiB"),
        (3 << 30, "3.0 GiB"),
        (1 << 50, "1024.0 TiB"),
    ],
)
def test_format_bytes_is_binary_throughout(n: int, text: str) -> None:
    assert format_bytes(n) == text


def test_rate_and_eta_unknown_read_dashes() -> None:
    assert format_rate(None) == "-- /s"
    assert format_eta(None) == "ETA --"
    assert format_rate(12.5 * MiB) == "12.5 MiB/s"


@pytest.mark.parametrize(("s", "text"), [(0, "ETA 0s"), (59.4, "ETA 59s"), (187, "ETA 3:07"), (3723, "ETA 1:02:03")])
def test_format_eta(s: float, text: str) -> None:
    assert format_eta(s) == text


def test_rate_meter_needs_half_a_second_of_samples() -> None:
    m = RateMeter()
    m.add(10.0, 0)
    assert m.rate() is None and m.eta(0, 100) is None
    m.add(10.2, 2 * MiB)
    assert m.rate() is None  # not 0 B/s, not a wild first figure: unknown
    m.add(11.0, 10 * MiB)
    assert m.rate() == pytest.approx(10 * MiB)
    assert m.eta(10 * MiB, 30 * MiB) == pytest.approx(2.0)


def test_rate_meter_follows_the_recent_window() -> None:
    m = RateMeter()
    for t in range(20):  # 1 MiB/s for 20 s ...
        m.add(float(t), t * MiB)
    for t in range(20, 30):  # ... then 5 MiB/s
        m.add(float(t), 19 * MiB + (t - 19) * 5 * MiB)
    assert m.rate() == pytest.approx(5 * MiB)


@pytest.mark.parametrize("width", [20, 40, 60, 80, 132, 300])
@pytest.mark.parametrize("rate", [None, 3.2 * MiB])
def test_render_never_reaches_the_last_column(width: int, rate: float | None) -> None:
    current = ("photos/a-very-long-file-name-that-goes-on-and-on.mkv", 30 * MiB, 700 * MiB)
    for done in (0, 1, 350 * MiB, 1000 * MiB):
        line = render(done, 1000 * MiB, rate, 100.0 if rate else None, width, current)
        assert len(line) <= width - 1, (width, line)
        assert "\n" not in line and "\r" not in line


def test_render_at_start_shows_no_fake_rate() -> None:
    line = render(0, 10 * MiB, None, None, 80)
    assert "0 B/s" not in line and "ETA 0s" not in line
    assert "-- /s" in line and "ETA --" in line


def test_render_60_columns_keeps_bar_rate_and_eta() -> None:
    line = render(512 * MiB, 1024 * MiB, 20 * MiB, 25.6, 60)
    assert line.startswith("[") and " 50%" in line and "20.0 MiB/s" in line and "ETA 26s" in line
    assert "MB/s" not in line


def test_render_names_a_large_file_when_there_is_room() -> None:
    line = render(5 * MiB, 20 * MiB, 1 * MiB, 15, 120, ("dir/movie.mkv", 5 * MiB, 10 * MiB))
    assert line.startswith("dir/movie.mkv 50% · [")


def test_file_cursor_only_for_large_files_of_a_multi_file_share() -> None:
    big = progress.LARGE_FILE
    cursor = FileCursor.of([("a", 10), ("b", big), ("c", 10)])
    assert cursor.at(5) is None  # small file
    assert cursor.at(10 + 7) == ("b", 7, big)
    assert cursor.at(10 + big + 1) is None
    assert FileCursor.of([("only", big)]).at(3) is None  # one file: the overall bar says it


def test_fit_cuts_in_the_middle() -> None:
    assert progress.fit("abcdefghij", 5) == "ab…ij"
    assert progress.fit("abc", 5) == "abc"


def test_receivers_line_fits_and_counts_the_rest() -> None:
    from p2pshare.node.progress import ReceiverLine, render_receivers

    rs = [ReceiverLine(f"…peer{i:04d}", i * MiB, 10 * MiB, (i + 1) * MiB if i else None) for i in range(6)]
    line = render_receivers(rs, 60)
    assert len(line) <= 59 and line.startswith("Sending: …peer0000 0% -- /s")
    assert "more" in line
    assert render_receivers(rs[:1], 80) == "Sending: …peer0000 0% -- /s"
    assert render_receivers([], 80) == ""


def test_render_80_columns_keeps_the_bar_beside_a_long_file_name() -> None:
    current = ("holiday/a-rather-long-name-of-a-beach-video.mp4", 40 * MiB, 286 * MiB)
    line = render(121 * MiB, 290 * MiB, 68 * MiB, 2.5, 80, current)
    assert len(line) <= 79 and "[" in line and "MiB/s" in line and "ETA 2s" in line and "·  " not in line


def test_seconds_of_a_fast_transfer_are_not_zero() -> None:
    assert format_seconds(0.034) == "0.03 s"
    assert format_seconds(4.26) == "4.3 s"
    assert format_seconds(95.4) == "95 s"
