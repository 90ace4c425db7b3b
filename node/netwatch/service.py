"""The trio side of :mod:`.core`: one route-netlink socket, one callback
per burst of address changes.

Where there is no route netlink (not Linux, or a sandbox that refuses the
socket), :func:`serve_address_watch` says so through ``task_status`` and
calls back every :data:`FALLBACK_POLL` seconds instead: the callback
compares addresses itself, so a call with nothing changed costs one look
at the interfaces.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio

from p2pshare.node.netwatch.core import GROUPS, MAX_DATAGRAM, Verdict, read_datagram

if TYPE_CHECKING:
    from trio_typing import TaskStatus  # trio's own name is hidden by trio-stubs

__all__ = ["FALLBACK_POLL", "MAX_PER_WAKEUP", "drain", "open_route_socket", "serve_address_watch"]

log = logging.getLogger(__name__)

#: Seconds between looks at the interfaces where no event says they changed.
FALLBACK_POLL: Final = 5.0
#: Datagrams read per wake-up before letting other tasks run (a burst of
#: thousands of changes cannot hold the event loop).
MAX_PER_WAKEUP: Final = 64


def open_route_socket() -> socket.socket | None:
    """A non-blocking route-netlink socket in the address groups, or None
    where the platform has none or refuses it."""
    family = getattr(socket, "AF_NETLINK", None)
    if family is None:
        return None
    try:
        sock = socket.socket(family, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)  # NETLINK_ROUTE
    except OSError:
        return None
    try:
        sock.bind((0, GROUPS))
        sock.setblocking(False)
    except OSError:
        sock.close()
        return None
    return sock


def drain(sock: socket.socket) -> bool:
    """Read what is queued (at most :data:`MAX_PER_WAKEUP` datagrams); True
    if any of it reports an address change."""
    changed = False
    for _ in range(MAX_PER_WAKEUP):
        try:
            data, _anc, flags, addr = sock.recvmsg(MAX_DATAGRAM)
        except BlockingIOError:
            break
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:  # the kernel dropped messages for us
                changed = True
                continue
            raise
        port = addr[0] if isinstance(addr, tuple) and addr else -1
        if read_datagram(data, port, truncated=bool(flags & socket.MSG_TRUNC)) is Verdict.CHANGED:
            changed = True
    return changed


async def serve_address_watch(
    on_change: Callable[[], None], *, task_status: TaskStatus[bool] = trio.TASK_STATUS_IGNORED
) -> None:
    """Call ``on_change`` after each burst of interface address changes,
    until cancelled. Started with ``nursery.start``: the value is True when
    the kernel tells us, False when this falls back to looking every
    :data:`FALLBACK_POLL` seconds. A netlink socket that fails later is
    logged and replaced by the same looks: it never ends the node."""
    sock = open_route_socket()
    if sock is None:
        task_status.started(False)
    else:
        with sock:
            task_status.started(True)
            try:
                while True:
                    await trio.lowlevel.wait_readable(sock.fileno())
                    if drain(sock):
                        on_change()
                    await trio.lowlevel.checkpoint()
            except OSError as exc:  # a socket the kernel broke must not end a long-lived node
                log.warning("address changes: netlink failed (%s); looking every %.0f s instead", exc, FALLBACK_POLL)
    while True:
        await trio.sleep(FALLBACK_POLL)
        on_change()
