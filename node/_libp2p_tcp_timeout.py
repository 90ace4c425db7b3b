"""Every TCP connection gives up on a peer that stops acknowledging: 60 s.

Why: a peer that vanishes without a FIN (a laptop closed, a Wi-Fi network
left, a NAT mapping expired: the usual way on the internet) kept its
connection until TCP gave up retransmitting, ``tcp_retries2`` = 15 tries,
~15 minutes on Linux. py-libp2p's yamux pings every connection every 30 s,
but only to measure the RTT: an unanswered ping changes nothing. All that
time a community relay kept the peer's connection, its reservation and its
slots against the per-peer and per-address limits, and a sharer whose
laptop moved to another network kept its dead connection to its relay (its
circuit address led nowhere until TCP gave up).

``TCP_USER_TIMEOUT`` (Linux, RFC 5482) makes the kernel close a connection
whose sent data stays unacknowledged for :data:`USER_TIMEOUT`. A live peer
acknowledges within a round trip whatever its application does (its yamux
reader always reads the socket; flow control is yamux's), and yamux's
pings mean an idle connection always has something to be acknowledged
every 30 s: a vanished peer is noticed within 30 + 60 s. Set on every TCP
stream py-libp2p wraps (dialled, accepted, hole-punched) by a patch of
``TrioTCPStream.__init__``; where the platform has no such option nothing
changes.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from ._libp2p_originals import ORIGINALS as _ORIGINALS

__all__ = ["USER_TIMEOUT", "set_user_timeout", "tcp_stream_init"]

logger = logging.getLogger(__name__)

#: Seconds sent data may stay unacknowledged before the kernel closes the
#: connection (also the longest outage a connection survives).
USER_TIMEOUT = 60.0


def set_user_timeout(sock: Any, seconds: float | None = None) -> bool:
    """Set ``TCP_USER_TIMEOUT`` on ``sock``; False where it cannot be set."""
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if option is None:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, int((USER_TIMEOUT if seconds is None else seconds) * 1000))
    except (OSError, AttributeError) as exc:
        logger.debug("TCP_USER_TIMEOUT not set: %r", exc)
        return False
    return True


def tcp_stream_init(self: Any, stream: Any) -> None:
    """``TrioTCPStream.__init__``, then the user timeout on its socket."""
    _ORIGINALS["tcp_user_timeout"](self, stream)
    sock = getattr(stream, "socket", None)
    if sock is not None:
        set_user_timeout(sock)
