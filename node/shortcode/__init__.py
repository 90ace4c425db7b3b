"""Short codes (``4127-guitar-ocean-velvet``) with no server of ours.

The number finds the sharer through the DHT (``sharecode.short``); the words
are the password of a SPAKE2 exchange over the peers' Noise stream
(protocol ``/p2pshare/shortcode/1.0.0``) that hands the receiver the full
code. Modules: :mod:`.wire` (codec), :mod:`.core` (the exchange and the
sharer's attempt count, pure), :mod:`.events` (pure), :mod:`._trio` (the
stream handler and the receiver's search). This package imports only the
pure parts, so importing it pulls in neither trio nor libp2p.
"""

from .core import DEFAULT_TRIES, DEFAULT_TTL, MAX_TRIES, MAX_TTL, CodeRefusedError, Offer, WrongWordsError
from .events import (
    ShortCodeAdvertised,
    ShortCodeClaimed,
    ShortCodeEvent,
    ShortCodeExpired,
    ShortCodeFailed,
    ShortCodeRefused,
)
from .wire import PROTOCOL_ID, Refusal

__all__ = [
    "DEFAULT_TRIES",
    "DEFAULT_TTL",
    "MAX_TRIES",
    "MAX_TTL",
    "PROTOCOL_ID",
    "CodeRefusedError",
    "Offer",
    "Refusal",
    "ShortCodeAdvertised",
    "ShortCodeClaimed",
    "ShortCodeEvent",
    "ShortCodeExpired",
    "ShortCodeFailed",
    "ShortCodeRefused",
    "WrongWordsError",
]
