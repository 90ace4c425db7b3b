"""``share``'s short code: offered again after a restart while it lasts,
and what happened to it said to the person.

A sharer stopped mid-transfer and started again got a new short code, while
the receiver ran the same command, as ``get`` tells it to: the DHT still
named the same peer under the old number, the new sharer ran the PAKE with
its new words, and ``get`` said "the words … do not match" (exit 4), using
up one of the new code's tries (a usability review, stop 44). The share
record now keeps the short code and its end; sharing the same paths again
before then offers the same code for the rest of its life. A code that ran
out of tries is dropped from the record: a restart does not revive it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from p2pshare.sharecode.short import ShortCode, parse_short_code

if TYPE_CHECKING:
    from p2pshare.node._output import Reporter
    from p2pshare.node.shares_db import ShareRecord
    from p2pshare.node.shortcode import ShortCodeEvent

__all__ = ["MIN_LEFT", "report", "reusable"]

#: A kept short code with less life than this is not offered again: the
#: receiver would hardly have time to use it.
MIN_LEFT = 60.0


def reusable(record: ShareRecord | None, now: float) -> tuple[ShortCode, float] | None:
    """The short code the last run of this share offered and the seconds it
    has left at ``now`` (wall clock), if it is still worth offering."""
    if record is None or record.short_code is None or record.short_expires is None:
        return None
    left = record.short_expires - now
    if left < MIN_LEFT:
        return None
    try:
        return parse_short_code(record.short_code), left
    except ValueError:
        return None  # a record written by hand, or by a version with other words


def report(reporter: Reporter, ev: ShortCodeEvent, tries: int) -> bool:
    """Say what happened to the short code (the sharer sees every failed
    guess); True when it just died (out of tries)."""
    from p2pshare.node.shortcode import (
        ShortCodeAdvertised,
        ShortCodeClaimed,
        ShortCodeExpired,
        ShortCodeFailed,
        ShortCodeRefused,
    )

    if isinstance(ev, ShortCodeAdvertised):
        reporter.event("short_code_advertised", keys=ev.keys, dht_peers=ev.peers)
        if not ev.peers:
            reporter.warning("no DHT peer took the short code's record yet; retrying (the long code works now)")
    elif isinstance(ev, ShortCodeClaimed):
        reporter.event("short_code_claimed", peer_id=ev.peer_id)
        reporter.say(f"Receiver …{ev.peer_id[-8:]} gave the right short code")
    elif isinstance(ev, ShortCodeFailed):
        reporter.event("short_code_failed", peer_id=ev.peer_id, tries_left=ev.tries_left)
        left = f"{ev.tries_left} of {tries} tries left" if ev.tries_left else "no tries left: the short code is dead"
        reporter.say(f"Peer …{ev.peer_id[-8:]} gave wrong short-code words ({left}; the long code still works)")
        return not ev.tries_left
    elif isinstance(ev, ShortCodeRefused):
        reporter.event("short_code_refused", peer_id=ev.peer_id, reason=ev.reason.name.lower())
    elif isinstance(ev, ShortCodeExpired):
        reporter.event("short_code_expired")
        reporter.say("The short code expired (the long code still works)")
    return False
