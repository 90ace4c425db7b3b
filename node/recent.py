"""Tables that keep only their newest entries.

A node may run for months (issue 9), and per-peer state that only ever
grows is a leak whose size a stranger chooses: every peer, relay or
sharer met adds one entry. Where only recent entries are read, a table
is a ``dict`` in insertion order, the newest last, and ``remember``
drops the oldest past its bound. Plain functions on a plain ``dict``:
callers keep their tables' types, and the tests read them as they are.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["remember"]

K = TypeVar("K")
V = TypeVar("V")


def remember(table: dict[K, V], key: K, value: V, keep: int) -> None:
    """Make ``key`` -> ``value`` the newest entry of ``table``; drop the
    oldest entries beyond ``keep``."""
    table.pop(key, None)
    table[key] = value
    while len(table) > keep:
        del table[next(iter(table))]
