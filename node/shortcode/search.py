"""The receiver's search for a short code's sharer: when to look again, pure.

One *round* looks the number up in the DHT and dials every provider found;
the PAKE runs with the ones that answered. A round that ends without the
full code ends in one of these ways, and only some are worth another round:

- every peer asked answered, and none knew the number: a wrong number,
  said at once (waiting would only delay the same answer);
- the lookup failed on its way (a peer timed out, a connection dropped):
  not "nobody has it", so look again;
- providers were found and none could be dialled: the sharer is restarting
  (stopped and started again it offers the same code, on a new port) or its
  network blinked. A long code's ``get`` dials until its ``--timeout``; a
  short code's failed in 0.4 s (a usability review, stop 44). Look again:
  the next lookup also brings the addresses the sharer advertises now.

A PAKE that ran and failed is never repeated here: the sharer counted a try
for it (wrong words, a refusal, a stream cut mid-exchange).

No trio in here: ``now`` and the ``deadline`` come from the caller. (The
pauses are ``discovery.lookup``'s, whose package imports trio: this module
is not re-exported by ``node.shortcode``, whose import stays light.)
"""

from __future__ import annotations

import enum

from p2pshare.node.discovery.lookup import retry_delay

__all__ = ["RoundEnd", "next_round"]


class RoundEnd(enum.Enum):
    """How a round of the search ended without the full code."""

    NOT_FOUND = "not found"  # every peer asked answered: nobody provides the number
    LOOKUP_FAILED = "lookup failed"  # found nothing, but peers it asked failed to answer
    UNREACHABLE = "unreachable"  # providers found, none could be dialled


def next_round(end: RoundEnd, rounds: int, now: float, deadline: float) -> float | None:
    """The pause before round ``rounds + 1``, or None: give up now.

    ``rounds`` counts the rounds done (>= 1). A pause that would end at or
    after ``deadline`` gives up instead: the last round's error is the
    answer, said before the deadline rather than after it.
    """
    if end is RoundEnd.NOT_FOUND:
        return None
    pause = retry_delay(rounds)  # the DHT's own pauses: a round costs it a lookup
    return pause if now + pause < deadline else None
