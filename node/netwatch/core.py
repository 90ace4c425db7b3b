"""Which route-netlink datagrams say an interface address came or went.

The kernel sends ``RTM_NEWADDR`` / ``RTM_DELADDR`` to the
``RTMGRP_IPV4_IFADDR`` and ``RTMGRP_IPV6_IFADDR`` groups (``rtnetlink(7)``).
All this module decides is *whether* a datagram reports a change: what the
addresses are now is read from the interfaces afterwards, so nothing in the
message bodies is parsed (a body the kernel's next version extends cannot
mislead us). Pure: no sockets, no trio.
"""

from __future__ import annotations

import enum
import struct
from typing import Final

__all__ = [
    "GROUPS",
    "HEADER",
    "KERNEL_PORT",
    "MAX_DATAGRAM",
    "Verdict",
    "read_datagram",
]

#: ``RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR``: the groups the socket joins.
GROUPS: Final = 0x10 | 0x100
#: ``struct nlmsghdr``: length, type, flags, sequence, port id (host order).
HEADER: Final = struct.Struct("=IHHII")
#: Messages from the kernel come from port id 0; any other sender is a local
#: process, and is ignored (it cannot make the node re-announce itself).
KERNEL_PORT: Final = 0
#: Read size: the kernel never sends more in one datagram to a group socket
#: with the default buffer; a longer one is cut (``MSG_TRUNC``) and counted
#: as a change, which costs one look at the interfaces.
MAX_DATAGRAM: Final = 65536

_NLMSG_OVERRUN: Final = 4  # the kernel dropped messages: something changed
_RTM_NEWADDR: Final = 20
_RTM_DELADDR: Final = 21
_CHANGES: Final = frozenset({_RTM_NEWADDR, _RTM_DELADDR, _NLMSG_OVERRUN})


class Verdict(enum.Enum):
    """What one datagram means for our addresses."""

    CHANGED = "changed"  # an address came or went (or the kernel lost count)
    UNCHANGED = "unchanged"  # well-formed, nothing about addresses
    IGNORED = "ignored"  # not from the kernel, or malformed before any change


def read_datagram(data: bytes | bytearray | memoryview, sender_port: int, truncated: bool = False) -> Verdict:
    """Walk the messages of one datagram (``nlmsghdr`` after ``nlmsghdr``,
    each padded to 4 bytes) and say whether any reports an address change.

    A message whose length is shorter than its header or runs past the
    datagram ends the walk: what came before it still counts. A truncated
    datagram (the socket's ``MSG_TRUNC``) from the kernel counts as a change."""
    if sender_port != KERNEL_PORT:
        return Verdict.IGNORED
    view = memoryview(data)
    pos = 0
    while pos + HEADER.size <= len(view):
        length, kind, _flags, _seq, _port = HEADER.unpack_from(view, pos)
        if length < HEADER.size or pos + length > len(view):
            break  # malformed, or cut short (then ``truncated`` says so)
        if kind in _CHANGES:
            return Verdict.CHANGED
        pos += (length + 3) & ~3
    else:
        if pos >= len(view) and not truncated:
            return Verdict.UNCHANGED
    return Verdict.CHANGED if truncated else Verdict.IGNORED
