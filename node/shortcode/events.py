"""What the sharer's short code went through, for the CLI to report. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from .wire import Refusal

__all__ = [
    "ShortCodeAdvertised",
    "ShortCodeClaimed",
    "ShortCodeEvent",
    "ShortCodeExpired",
    "ShortCodeFailed",
    "ShortCodeRefused",
]


@dataclass(frozen=True)
class ShortCodeClaimed:
    """A receiver knew the words and now has the full code."""

    peer_id: str


@dataclass(frozen=True)
class ShortCodeFailed:
    """An attempt failed (wrong words, or it never confirmed): one try used."""

    peer_id: str
    tries_left: int


@dataclass(frozen=True)
class ShortCodeRefused:
    """An attempt came after the code expired or ran out of tries."""

    peer_id: str
    reason: Refusal


@dataclass(frozen=True)
class ShortCodeAdvertised:
    """The number's provider records went out: ``peers`` DHT peers took the
    first window's record (0: not yet; discovery keeps retrying)."""

    keys: int
    peers: int


@dataclass(frozen=True)
class ShortCodeExpired:
    """The code's time is up; its DHT records are no longer refreshed."""


ShortCodeEvent = ShortCodeAdvertised | ShortCodeClaimed | ShortCodeFailed | ShortCodeRefused | ShortCodeExpired
