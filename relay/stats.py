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
from typing import TYPE_CHECKING, Any

from p2pshare.node.progress import format_bytes, format_count

if TYPE_CHECKING:  # imported for its type only: every command's start-up loads this module
    from p2pshare.node.circuit.limits import RelayLimits, RelayStats

__all__ = ["DEFAULT_EVERY", "Snapshot", "summary", "stop_summary", "fields", "limits_summary"]

#: Seconds between two summaries unless ``--stats-every`` says otherwise.
DEFAULT_EVERY = 3600


@dataclass(frozen=True)
class Snapshot:
    """The relay at one moment: its totals since start (a copy of the hop
    service's :class:`RelayStats`) and what it holds now."""

    totals: RelayStats
    reservations_now: int = 0
    circuits_now: int = 0


def _period(seconds: float) -> str:
    if seconds >= 120 and round(seconds) % 60 == 0:
        return f"{round(seconds) // 60} min"
    return f"{seconds:.0f} s"


def fields(before: Snapshot, now: Snapshot, seconds: float) -> dict[str, Any]:
    """The period's figures, for the ``relay_stats`` JSON event."""
    was, is_ = before.totals, now.totals
    return {
        "seconds": round(seconds, 1),
        "reservations": is_.reservations_granted - was.reservations_granted,
        "reservations_refused": is_.reservations_refused - was.reservations_refused,
        "circuits": is_.circuits_opened - was.circuits_opened,
        "circuits_refused": is_.circuits_refused - was.circuits_refused,
        "bytes": is_.bytes_relayed - was.bytes_relayed,
        "reservations_now": now.reservations_now,
        "circuits_now": now.circuits_now,
    }


def summary(before: Snapshot, now: Snapshot, seconds: float) -> str:
    """One line: the period's reservations, circuits and bytes, then what is held now."""
    held = f"{format_count(now.reservations_now, 'reservation')}, {format_count(now.circuits_now, 'circuit')}"
    return f"Relay, last {_period(seconds)}: {_parts(before, now, seconds)}; holding {held} now"


def stop_summary(start: Snapshot, now: Snapshot, seconds: float) -> str:
    """The line a stopping relay says: what it did over its whole run, and
    the circuits the stop cut (it said only "Relay stopped.": a usability review)."""
    cut = f"; {format_count(now.circuits_now, 'circuit')} cut by the stop" if now.circuits_now else ""
    return f"Relay stopped after {_run_length(seconds)}: {_parts(start, now, seconds)}{cut}."


def _run_length(seconds: float) -> str:
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 48 * 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _parts(before: Snapshot, now: Snapshot, seconds: float) -> str:
    f = fields(before, now, seconds)
    parts = [
        format_count(f["reservations"], "reservation")
        + (f" ({f['reservations_refused']} refused)" if f["reservations_refused"] else ""),
        format_count(f["circuits"], "circuit")
        + (f" ({f['circuits_refused']} refused)" if f["circuits_refused"] else ""),
        f"{format_bytes(f['bytes'])} relayed",
    ]
    return ", ".join(parts)


def limits_summary(limits: RelayLimits) -> str:
    """The limits the relay serves under, in one line at its start: an
    operator could learn them only from ``--help``'s defaults and their own
    flags (a usability review), and a refusal in the stats line is easier
    to read next to the limit that made it."""
    ends = [
        *([_span(limits.circuit_duration)] if limits.circuit_duration else []),
        *([f"{format_bytes(limits.circuit_data)} each way"] if limits.circuit_data else []),
        *([f"{_span(limits.circuit_idle)} idle"] if limits.circuit_idle else []),
    ]
    rates = [
        *([f"{format_bytes(limits.circuit_rate)}/s per circuit"] if limits.circuit_rate else []),
        *([f"{format_bytes(limits.total_rate)}/s in all"] if limits.total_rate else []),
    ]
    return (
        f"Limits: {format_count(limits.max_reservations, 'reservation')} "
        f"({limits.max_reservations_per_peer} per peer, {limits.max_reservations_per_ip} per address, "
        f"{_span(limits.reservation_ttl)} each), {format_count(limits.max_circuits, 'circuit')} "
        f"({limits.max_circuits_per_reservation} to one reserved peer, {limits.max_circuits_per_peer} per peer, "
        f"{limits.max_circuits_per_ip} per address, {limits.max_circuits_per_ip_to_target} from one address "
        "to one peer); "
        + (f"a circuit ends after {' or '.join(ends)}" if ends else "a circuit never ends on a limit")
        + (f"; at most {' and '.join(rates)}" if rates else "")
        + " (relay --help lists the flags)"
    )


def _span(seconds: int) -> str:
    """A limit's length: ``90 s``, ``30 min``, ``1 h``, ``1 h 30 min``."""
    if seconds < 120 and seconds % 60:
        return f"{seconds} s"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds < 3600 else _run_length(seconds)
