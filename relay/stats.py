"""What a running relay says about itself, once a period (pure: no trio).

A relay runs for months; its operator otherwise learns nothing without
``-v`` (which logs every circuit). Once every ``--stats-every`` seconds
(default an hour) it prints one line and, with ``--json``, a
``relay_stats`` event: what it granted, refused and carried in the period,
and what it holds now. :func:`summary` makes the line from two
:class:`Snapshot` s; the trio side only takes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from p2pshare.node.progress import format_bytes

__all__ = ["DEFAULT_EVERY", "Snapshot", "summary", "fields"]

#: Seconds between two summaries unless ``--stats-every`` says otherwise.
DEFAULT_EVERY = 3600


@dataclass(frozen=True)
class Snapshot:
    """The relay's counters at one moment (totals since start, and what it holds)."""

    reservations_granted: int = 0
    reservations_refused: int = 0
    circuits_opened: int = 0
    circuits_refused: int = 0
    bytes_relayed: int = 0
    reservations_now: int = 0
    circuits_now: int = 0


def _period(seconds: float) -> str:
    if seconds >= 120 and round(seconds) % 60 == 0:
        return f"{round(seconds) // 60} min"
    return f"{seconds:.0f} s"


def _n(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


def fields(before: Snapshot, now: Snapshot, seconds: float) -> dict[str, Any]:
    """The period's figures, for the ``relay_stats`` JSON event."""
    return {
        "seconds": round(seconds, 1),
        "reservations": now.reservations_granted - before.reservations_granted,
        "reservations_refused": now.reservations_refused - before.reservations_refused,
        "circuits": now.circuits_opened - before.circuits_opened,
        "circuits_refused": now.circuits_refused - before.circuits_refused,
        "bytes": now.bytes_relayed - before.bytes_relayed,
        "reservations_now": now.reservations_now,
        "circuits_now": now.circuits_now,
    }


def summary(before: Snapshot, now: Snapshot, seconds: float) -> str:
    """One line: the period's reservations, circuits and bytes, then what is held now."""
    f = fields(before, now, seconds)
    parts = [
        _n(f["reservations"], "reservation")
        + (f" ({f['reservations_refused']} refused)" if f["reservations_refused"] else ""),
        _n(f["circuits"], "circuit") + (f" ({f['circuits_refused']} refused)" if f["circuits_refused"] else ""),
        f"{format_bytes(f['bytes'])} relayed",
    ]
    held = f"{_n(now.reservations_now, 'reservation')}, {_n(now.circuits_now, 'circuit')}"
    return f"Relay, last {_period(seconds)}: {', '.join(parts)}; holding {held} now"
