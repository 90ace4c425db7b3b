"""Compact sets of global chunk indices as sorted ``[start, end)`` ranges."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

Range = tuple[int, int]


def to_ranges(indices: Iterable[int]) -> list[Range]:
    """Ranges of an ascending sequence of distinct indices."""
    out: list[Range] = []
    for i in indices:
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def coarsen(ranges: list[Range], limit: int) -> list[Range]:
    """Merge across the smallest gaps until at most ``limit`` ranges remain.

    Re-requesting a few chunks we already hold is cheaper than a WANT
    message without a size bound.
    """
    if len(ranges) <= limit:
        return list(ranges)
    gaps = sorted(range(1, len(ranges)), key=lambda i: ranges[i][0] - ranges[i - 1][1])
    merge = set(gaps[: len(ranges) - limit])
    out: list[Range] = []
    for i, r in enumerate(ranges):
        if i in merge:
            out[-1] = (out[-1][0], r[1])
        else:
            out.append(r)
    return out


def check_ranges(ranges: Iterable[Range], total: int) -> None:
    """Raise ``ValueError`` unless ranges are non-empty, sorted, disjoint, in [0, total)."""
    prev_end = 0
    for start, end in ranges:
        if not prev_end <= start < end <= total:
            raise ValueError("ranges must be sorted, disjoint, non-empty and within the share")
        prev_end = end


def iter_ranges(ranges: Iterable[Range]) -> Iterator[int]:
    for start, end in ranges:
        yield from range(start, end)


def count(ranges: Iterable[Range]) -> int:
    return sum(end - start for start, end in ranges)
