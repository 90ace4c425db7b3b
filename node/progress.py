"""Progress a person can read: pure formatting and rate keeping, no I/O.

The old bar ignored the terminal width (in 60 columns every redraw wrapped
and added a line), started at ``0 B/s ETA 0s`` and mixed MiB/s with MB/s.
Here one unit family is used throughout, binary (IEC: KiB, MiB, GiB — the
same as the free-space and size messages), rates are ``MiB/s``, the rate and
ETA read ``--`` until there is a measured rate, and :func:`render` never
returns more than ``width - 1`` characters (the last column stays empty: a
terminal that autowraps would move the cursor to the next line when it is
written, and ``\\r`` would then redraw on a new line).

:class:`RateMeter` takes ``now`` from its caller, so the rate and the ETA are
unit-tested with fake time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "RATE_WINDOW",
    "FileCursor",
    "RateMeter",
    "ReceiverLine",
    "render_receivers",
    "format_bytes",
    "format_count",
    "format_eta",
    "format_rate",
    "render",
    "fit",
]

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
#: Seconds of history the rate is measured over: recent enough to follow a
#: change of path (relayed to direct), long enough not to flicker.
RATE_WINDOW = 5.0
#: The rate is shown once this much time of samples exists.
RATE_MIN_SPAN = 0.5
#: A file this large gets its own name and percentage on the line.
LARGE_FILE = 4 << 20


def format_count(n: int, what: str) -> str:
    """``1 file``, ``3 files``: a count and its noun (regular plurals only)."""
    return f"{n} {what}{'' if n == 1 else 's'}"


def format_bytes(n: float) -> str:
    """``123 B``, ``1.5 KiB`` … ``2.0 TiB``: binary units, one decimal."""
    value = float(n)
    for unit in UNITS:
        if abs(value) < 1024 or unit == UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_rate(bytes_per_second: float | None) -> str:
    """``12.3 MiB/s``; ``-- /s`` while no rate is known."""
    if bytes_per_second is None:
        return "-- /s"
    return f"{format_bytes(bytes_per_second)}/s"


def format_seconds(seconds: float) -> str:
    """``0.12 s``, ``4.3 s``, ``95 s``: a fast transfer is not "0.0 s"."""
    if seconds < 1:
        return f"{seconds:.2f} s"
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds:.0f} s"


def format_eta(seconds: float | None) -> str:
    """``ETA 7s``, ``ETA 3:07``, ``ETA 1:02:03``; ``ETA --`` when unknown."""
    if seconds is None:
        return "ETA --"
    s = max(0, round(seconds))
    if s < 60:
        return f"ETA {s}s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"ETA {h}:{m:02d}:{sec:02d}" if h else f"ETA {m}:{sec:02d}"


class RateMeter:
    """Bytes per second over the last :data:`RATE_WINDOW` seconds."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, done: int) -> None:
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW:
            self._samples.popleft()

    def rate(self) -> float | None:
        """None until :data:`RATE_MIN_SPAN` seconds of samples exist."""
        if len(self._samples) < 2:
            return None
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        if t1 - t0 < RATE_MIN_SPAN:
            return None
        return max(0.0, (b1 - b0) / (t1 - t0))

    def eta(self, done: int, total: int) -> float | None:
        rate = self.rate()
        if rate is None or rate <= 0:
            return None
        return max(0, total - done) / rate


@dataclass(frozen=True)
class FileCursor:
    """Which file the verified byte count is in, for the per-file part of the line.

    Files are requested in manifest order, so the ``done``-th byte of the
    share lies in the file whose cumulative range holds it. After a resume
    this is an approximation (some earlier bytes were already here); the
    overall figures stay exact.
    """

    files: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, files: Sequence[tuple[str, int]]) -> FileCursor:
        return cls(tuple(files))

    def at(self, done: int) -> tuple[str, int, int] | None:
        """(path, bytes of it done, its size) for a large file of a multi-file share, else None."""
        if len(self.files) < 2:
            return None
        start = 0
        for path, size in self.files:
            if done < start + size:
                if size < LARGE_FILE:
                    return None
                return path, done - start, size
            start += size
        return None


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, with ``…`` where it was cut (in the middle)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    head = (width - 1) // 2
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def _percent(done: int, total: int) -> str:
    return f"{(done / total * 100 if total else 100.0):3.0f}%"


def render(
    done: int,
    total: int,
    rate: float | None,
    eta: float | None,
    width: int,
    current: tuple[str, int, int] | None = None,
) -> str:
    """One progress line of at most ``width - 1`` characters.

    Parts are dropped, least useful first, until it fits: the per-file part,
    the bar, the byte counts, the ETA; what remains is the percentage.
    """
    room = max(1, width - 1)
    pct = _percent(done, total)
    counts = f"{format_bytes(done)}/{format_bytes(total)}"
    speed = format_rate(rate)
    eta_text = format_eta(eta)
    tail_options = [
        f"{pct} {counts} {speed} {eta_text}",
        f"{pct} {speed} {eta_text}",
        f"{pct} {eta_text}",
        pct,
    ]
    for tail in tail_options:
        for with_file in (True, False):
            prefix = ""
            if with_file and current is not None:
                path, fdone, fsize = current
                fpct = _percent(fdone, fsize).strip()
                # "name pct · " before a bar of at least 10 ("[", "]", a space): 17 more columns
                name_room = min(40, room - len(tail) - len(fpct) - 17)
                if name_room < 8:
                    continue
                prefix = f"{fit(path, name_room)} {fpct} · "
            bar_room = room - len(prefix) - len(tail) - 3  # "[", "]", one space
            if bar_room >= 10:
                bar_width = min(bar_room, 30)
                filled = int((done / total if total else 1.0) * bar_width)
                return f"{prefix}[{'#' * filled}{'.' * (bar_width - filled)}] {tail}"
            if len(prefix) + len(tail.lstrip()) <= room:
                return prefix + tail.lstrip()
    return fit(pct, room)


@dataclass(frozen=True)
class ReceiverLine:
    """One receiver as the sharer sees it."""

    name: str  # short peer name, e.g. "…Ab12Cd34"
    sent: int
    total: int
    rate: float | None


def render_receivers(receivers: Sequence[ReceiverLine], width: int) -> str:
    """The sharer's status line: each receiver's percentage and rate, fitted to ``width - 1``.

    Receivers that do not fit are counted (``+2 more``) rather than wrapped."""
    room = max(1, width - 1)
    parts = [f"{r.name} {_percent(r.sent, r.total).strip()} {format_rate(r.rate)}" for r in receivers]
    if not parts:
        return ""
    head = "Sending: "
    for shown in range(len(parts), 0, -1):
        rest = len(parts) - shown
        line = head + " · ".join(parts[:shown]) + (f" · +{rest} more" if rest else "")
        if len(line) <= room:
            return line
    return fit(head + parts[0], room)
