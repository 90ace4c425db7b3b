"""mDNS on real sockets: UDP multicast 224.0.0.251:5353 on our LAN interfaces.

Thin by design: :class:`~.core.MdnsCore` decides, this moves datagrams. One
socket bound to port 5353 with ``SO_REUSEADDR``/``SO_REUSEPORT`` (several
nodes, and an mDNS daemon, can share one host: multicast reaches every such
socket) joins the group on each interface that holds one of our LAN
addresses, and sends on each of them (``IP_MULTICAST_IF``). A node with no
LAN address (loopback-only tests, a public server) sends nothing at all.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import trio

from p2pshare.node.discovery.peers import normalize_addr
from p2pshare.sharecode.multiaddrs import ip_text

from .core import Found, MdnsCore
from .wire import MAX_PACKET

if TYPE_CHECKING:
    from trio_typing import TaskStatus  # trio's own name is hidden by trio-stubs

__all__ = ["GROUP", "PORT", "Mdns", "serve_mdns"]

log = logging.getLogger(__name__)

GROUP = "224.0.0.251"
PORT = 5353
_MAX_PACKETS_PER_SECOND = 200  # beyond this a flood is read and dropped undecoded
_FOUND_QUEUE = 64  # peers waiting for the node to dial them; more are dropped


class Mdns:
    """A running mDNS responder and querier; see :func:`serve_mdns`."""

    def __init__(self, core: MdnsCore) -> None:
        self.core = core
        self._changed = trio.Event()
        self.interfaces: list[str] = []

    def addrs_of(self, peer_id: str) -> list[str]:
        """The LAN addresses ``peer_id`` announced (without ``/p2p/``)."""
        out = [normalize_addr(a, peer_id) for a in self.core.addrs_of(peer_id, trio.current_time())]
        return [a for a in out if a]

    async def wait_addrs(self, peer_id: str, timeout: float) -> list[str]:
        """``peer_id``'s LAN addresses once an answer names them; [] after ``timeout``."""
        with trio.move_on_after(timeout):
            while not self.addrs_of(peer_id):
                await self._changed.wait()
        return self.addrs_of(peer_id)

    def learned(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


def _lan_ipv4(addrs: Sequence[str]) -> list[str]:
    out: list[str] = []
    for addr in addrs:
        ip = ip_text(addr)
        if ip is not None and ipaddress.ip_address(ip).version == 4 and ip not in out:
            out.append(ip)
    return out


def _open_socket(interfaces: Sequence[str]) -> trio.socket.SocketType:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)  # RFC 6762 §11
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)  # other nodes on this host
        for ip in interfaces:
            mreq = socket.inet_aton(GROUP) + socket.inet_aton(ip)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    except OSError:
        sock.close()
        raise
    return sock


async def _send(sock: trio.socket.SocketType, interfaces: Sequence[str], data: bytes) -> None:
    for ip in interfaces:
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ip))
            await sock.sendto(data, (GROUP, PORT))
        except OSError as exc:
            log.debug("mDNS send on %s: %s", ip, exc)


async def serve_mdns(
    peer_id: str,
    addrs: Callable[[], Sequence[str]],
    on_found: Callable[[Found], Awaitable[None]],
    *,
    task_status: TaskStatus[Mdns] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Announce ``addrs()`` (LAN ones only) and hand each peer heard of to
    ``on_found`` (one at a time; a slow node drops, never queues without end).
    Starts with ``Mdns`` even when there is no LAN or the port cannot be had:
    discovery then just finds nobody."""
    core = MdnsCore(peer_id, addrs, trio.current_time())
    mdns = Mdns(core)
    interfaces = _lan_ipv4(core.lan_addrs())
    if not interfaces:
        log.debug("mDNS: no LAN address to announce; not started")
        task_status.started(mdns)
        return
    try:
        sock = _open_socket(interfaces)
        await sock.bind(("", PORT))
    except OSError as exc:
        log.warning("local discovery (mDNS) is off: %s", exc.strerror or exc)
        task_status.started(mdns)
        return
    mdns.interfaces = interfaces
    send_found, recv_found = trio.open_memory_channel[Found](_FOUND_QUEUE)
    with sock:
        async with trio.open_nursery() as nursery:

            async def deliver() -> None:
                async for found in recv_found:
                    try:
                        await on_found(found)
                    except Exception as exc:  # noqa: BLE001 - one peer's failure is not ours
                        log.debug("mDNS peer %s: %s", found.peer_id, exc)

            async def ask() -> None:
                hello = core.announcement()
                if hello is not None:
                    await _send(sock, interfaces, hello)
                while True:
                    await trio.sleep_until(core.next_query_at())
                    query = core.query(trio.current_time())
                    if query is not None:
                        await _send(sock, interfaces, query)

            nursery.start_soon(deliver)
            nursery.start_soon(ask)
            task_status.started(mdns)
            window, count = trio.current_time(), 0
            while True:
                data, _src = await sock.recvfrom(MAX_PACKET + 1)  # a larger one shows as too large
                now = trio.current_time()
                if now - window >= 1.0:
                    window, count = now, 0
                count += 1
                if count > _MAX_PACKETS_PER_SECOND:
                    continue
                answer, found = core.on_packet(data, now)
                if answer is not None:
                    await _send(sock, interfaces, answer)
                if found:
                    mdns.learned()
                for peer in found:
                    try:
                        send_found.send_nowait(peer)
                    except trio.WouldBlock:
                        log.debug("mDNS: too many peers waiting; %s dropped", peer.peer_id)
