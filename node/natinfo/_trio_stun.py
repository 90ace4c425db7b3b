"""STUN over TCP with trio: a tiny Binding responder and the mapping prober.

The prober connects FROM our libp2p listen port (``SO_REUSEADDR`` +
``SO_REUSEPORT``) to each server endpoint, so what the servers see is the
NAT mapping of that very port — the address a hole-punching peer must aim
at. TCP, not UDP, because our punching is TCP and NATs map the two
protocols independently. The responder answers one Binding request per
connection and closes first, so the TIME_WAIT state stays on the server and
the client may reuse its port at once.
"""

from __future__ import annotations

import logging
import socket as stdlib_socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from p2pshare.node.natinfo.addrs import ip_group
from p2pshare.node.natinfo.classify import NatReport, classify
from p2pshare.node.natinfo.stun import (
    HEADER_LENGTH,
    Observation,
    StunError,
    binding_request,
    binding_response,
    body_length,
    parse_binding_response,
)
from p2pshare.node.slots import Slots

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = ["serve_stun_tcp", "observe", "probe_nat", "DEFAULT_PORTS"]

logger = logging.getLogger(__name__)

DEFAULT_PORTS = (3478, 3479)
READ_TIMEOUT = 5.0
_MAX_CONNS = 256
#: Connections one address (an IPv6 /64) may hold at once (a NAT's users share one).
_MAX_CONNS_PER_IP = 16


async def _read_exact(stream: trio.SocketStream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.receive_some(n - len(buf))
        if not chunk:
            raise EOFError("connection closed inside a STUN message")
        buf += chunk
    return bytes(buf)


async def _read_message(stream: trio.SocketStream) -> bytes:
    header = await _read_exact(stream, HEADER_LENGTH)
    return header + await _read_exact(stream, body_length(header))


async def serve_stun_tcp(
    ip: str,
    ports: Sequence[int] = DEFAULT_PORTS,
    *,
    task_status: TaskStatus[list[int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer STUN Binding requests over TCP on ``ip``:``ports`` until cancelled.
    ``task_status`` gets the bound ports (useful with port 0)."""
    slots = Slots(_MAX_CONNS, _MAX_CONNS_PER_IP)

    async def handle(stream: trio.SocketStream) -> None:
        try:
            peer = stream.socket.getpeername()
        except OSError:
            peer = ("", 0)
        ip = str(peer[0])
        group = ip_group(ip)
        if not slots.take(group):  # over the bound: close now, hold nothing (see node.slots)
            logger.debug("stun: refused a connection from %s: too many open", ip)
            await trio.aclose_forcefully(stream)
            return
        try:
            async with stream:
                with trio.fail_after(READ_TIMEOUT):
                    request = await _read_message(stream)
                    await stream.send_all(binding_response(request, (ip, int(peer[1]))))
        except (StunError, EOFError, trio.TooSlowError, trio.BrokenResourceError, OSError) as e:
            logger.debug("stun: dropped a client: %s", e)
        finally:
            slots.give_back(group)

    listeners: list[trio.SocketListener] = []
    try:
        for port in ports:
            listeners += await trio.open_tcp_listeners(port, host=ip)
        bound = [int(lst.socket.getsockname()[1]) for lst in listeners]
        async with trio.open_nursery() as nursery:
            for lst in listeners:
                nursery.start_soon(trio.serve_listeners, handle, [lst])
            task_status.started(bound)
    finally:
        for lst in listeners:
            await lst.aclose()


async def _observe_one(local: tuple[str, int], server: tuple[str, int]) -> Observation:
    family = stdlib_socket.AF_INET6 if ":" in server[0] else stdlib_socket.AF_INET
    sock = trio.socket.socket(family, stdlib_socket.SOCK_STREAM)
    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEPORT, 1)
    try:
        await sock.bind(local)
        await sock.connect(server)
        bound = sock.getsockname()  # the concrete address when ``local`` is a wildcard
    except BaseException:
        sock.close()
        raise
    async with trio.SocketStream(sock) as stream:
        txid, request = binding_request()
        await stream.send_all(request)
        mapped = parse_binding_response(await _read_message(stream), txid)
        with trio.move_on_after(1.0):  # let the server close first (its TIME_WAIT)
            await stream.receive_some(1)
    return Observation((str(bound[0]), int(bound[1])), server, mapped)


async def observe(
    local: tuple[str, int], servers: Sequence[tuple[str, int]], timeout: float = 5.0
) -> list[Observation]:
    """Ask every server at once what it sees of ``local``; failures are skipped."""
    out: list[Observation] = []

    async def one(server: tuple[str, int]) -> None:
        try:
            with trio.fail_after(timeout):
                out.append(await _observe_one(local, server))
        except (OSError, StunError, EOFError, trio.TooSlowError, trio.BrokenResourceError) as e:
            logger.debug("stun: %s via %s failed: %s", local, server, e)

    async with trio.open_nursery() as nursery:
        for server in dict.fromkeys(servers):
            nursery.start_soon(one, server)
    return out


async def probe_nat(local: tuple[str, int], servers: Sequence[tuple[str, int]], timeout: float = 5.0) -> NatReport:
    """Observe ``local`` from every server and classify the NAT's mapping."""
    return classify(await observe(local, servers, timeout))
