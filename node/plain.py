"""One error line a person can act on; the nested detail only with ``-v``.

Dial failures arrive as chains (``could not reach the sharer: direct:
could not reach 12D3…: /ip4/…: SwarmException: … (ExceptionGroup: …)``),
~400 characters that say less to a person than one sentence does. The
short line says what happened and what to do next; ``-v`` (and every
``--json`` error event, for scripts and the lab's reports) keeps the whole
text. Pure: it maps message text, so each case is a unit test.
"""

from __future__ import annotations

import re

from p2pshare.node.online import OFFLINE_UNREACHABLE

__all__ = ["MAX_PLAIN_CHARS", "plain_message"]

#: A nested chain longer than this is cut to its first clause.
MAX_PLAIN_CHARS = 160
#: The marks of a wrapped library exception (plain long messages, such as
#: the list of files not received, are kept whole: every part is for people).
_NESTED = re.compile(r"\b\w*(Exception|Error)(Group)?: ")

_AGAIN = "run the same command again to resume (what arrived is kept)"
_STALL = re.compile(r"^the sharer made no progress for (\S+) s\b")


def plain_message(message: str) -> str | None:
    """The short line for ``message``, or None when it is short and plain already."""
    if message.startswith("could not reach the sharer"):
        if "PeerIDMismatchesPubkey" in message:  # another node now at its address (a restart, a reused port)
            return (
                "could not reach the sharer: another peer answers at its address; the code may be old or "
                "mistyped — ask the sharer for the code its `p2pshare share` prints now"
            )
        where = "at its addresses or in the DHT" if "DHT" in message else "at its addresses"
        return (
            f"could not reach the sharer: nothing answered {where}; it may have stopped sharing or be "
            "offline — check the code, ask the sharer to keep `p2pshare share` running, and try again"
        )
    if message.startswith("found a sharer of short code") and "could not reach it" in message:
        head = message.split(" but could not reach it", 1)[0]
        return (
            f"{head} but could not reach it; it may have stopped sharing or be offline — ask the sharer to keep "
            "`p2pshare share` running, and try again"
        )
    if message.startswith(OFFLINE_UNREACHABLE):
        return OFFLINE_UNREACHABLE
    if message.startswith("lost the sharer"):
        return f"lost the connection to the sharer and could not reach it again; {_AGAIN}"
    stall = _STALL.match(message)
    if stall:
        return f"the transfer stalled: no verified data from the sharer for {stall.group(1)} s; {_AGAIN}"
    if not _NESTED.search(message):
        return None
    head = re.split(r": |\s\(", message, maxsplit=1)[0]
    return head if len(head) <= MAX_PLAIN_CHARS else head[: MAX_PLAIN_CHARS - 1] + "…"
