"""Why a TCP listen address cannot be bound here, in the kernel's words.

py-libp2p's TCP transport logs a failed bind and carries on without that
listener, so the host only learns *that* an address is missing from its
listeners, not why. A person who typed ``--listen /ip4/0.0.0.0/tcp/4001``
needs the why: the port is taken by another program, or the address is
not one of this machine's. :func:`bind_failure` asks the kernel once more,
with the options trio's listeners use (``SO_REUSEADDR``; IPv6 only on an
IPv6 socket), and returns its answer. The probe socket is closed at once.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

__all__ = ["bind_failure", "listen_problem"]


def bind_failure(addr: str) -> str | None:
    """The reason ``/ip4|ip6/HOST/tcp/PORT`` cannot be bound now (``Address
    already in use``), or None: it can be, or ``addr`` is not such an address."""
    parts = addr.split("/")
    if len(parts) < 5 or parts[0] or parts[1] not in ("ip4", "ip6") or parts[3] != "tcp":
        return None
    try:
        host = str(ipaddress.ip_address(parts[2]))
        port = int(parts[4])
    except ValueError:
        return None
    if not 0 <= port <= 65535:
        return None
    family = socket.AF_INET if parts[1] == "ip4" else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind((host, port))
            probe.listen()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:  # say what to do: the port is the person's choice
            return f"{exc.strerror} (another program or p2pshare listens there: pick another port, or /tcp/0 for any)"
        return exc.strerror or str(exc)
    return None


_EXAMPLE = "/ip4/0.0.0.0/tcp/4001"


def listen_problem(addr: str) -> str | None:
    """Why ``addr`` cannot be one of our listen addresses, or None. We
    listen on TCP only (``/ip4|ip6/<ip>/tcp/<port>``; py-libp2p's QUIC and
    WebSocket transports are not loaded, and asking for them ended in an
    internal error); then the kernel is asked (:func:`bind_failure`)."""
    parts = addr.split("/")
    if len(parts) < 3 or parts[0] or parts[1] not in ("ip4", "ip6"):
        return f"not a listen address (e.g. {_EXAMPLE})"
    try:
        ip = ipaddress.ip_address(parts[2])
    except ValueError:
        return f"{parts[2][:60]!r} is not an IP address (e.g. {_EXAMPLE})"
    if ip.version != (4 if parts[1] == "ip4" else 6):
        return f"{parts[2]} is not an {parts[1]} address"
    if len(parts) != 5 or parts[3] != "tcp":
        return f"only TCP listen addresses are supported (/{parts[1]}/{parts[2]}/tcp/<port>)"
    if not parts[4].isdigit() or int(parts[4]) > 65535:
        return f"bad port {parts[4][:20]!r}"
    return bind_failure(addr)
