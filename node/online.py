"""Does this machine have a route to the internet at all? (no packet is sent)

Why: offline (a laptop off Wi-Fi), ``get`` waited its whole deadline and
then said the *sharer* "may have stopped sharing or be offline", and
``share`` printed a code naming only 127.0.0.1, to be sent to someone who
can never reach it, without a word. Both now say that this machine has no
route (``cmd_get``, ``cmd_share``).

How: ``connect`` on a UDP socket only asks the kernel's routing table which
local address would be used (nothing goes on the wire). With no route it
fails (``ENETUNREACH``); a route that only leads to loopback or a
link-local address does not count. The targets are documentation
addresses (RFC 5737, RFC 3849): never contacted, and routed like any other
address by a machine with a default route.
"""

from __future__ import annotations

import socket

from p2pshare.sharecode.multiaddrs import IpClass, ip_class

__all__ = ["OFFLINE", "OFFLINE_UNREACHABLE", "PROBES", "has_route"]

#: How ``get`` and ``share`` say it (each adds what it means for them).
OFFLINE = "this machine has no route to the internet (offline?)"
#: ``get``'s error when it could not reach the sharer while offline; the
#: message goes on with what was tried, the line for people stops here.
OFFLINE_UNREACHABLE = f"{OFFLINE}, so the sharer could not be reached; connect it and run the same command again"

#: (family, address) asked about; a route to any one of them is enough.
PROBES: tuple[tuple[socket.AddressFamily, str], ...] = (
    (socket.AF_INET, "203.0.113.1"),
    (socket.AF_INET6, "2001:db8::1"),
)
_PORT = 9  # discard; no datagram is sent


def has_route() -> bool:
    """True if the routing table leads somewhere off this machine for a public address."""
    for family, ip in PROBES:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect((ip, _PORT))
                local = str(sock.getsockname()[0])
        except OSError:
            continue
        if ip_class(local) in (IpClass.PRIVATE, IpClass.PUBLIC) and local not in ("0.0.0.0", "::"):
            return True
    return False
