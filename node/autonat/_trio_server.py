"""AutoNAT v1 server role over a :class:`node.host.Host` (trio adapter).

The dial-back always opens a NEW TCP connection and completes a Noise
handshake that proves the requester's peer ID (``Host.connect_unknown``), so
an existing connection can never make a NATed peer look public (py-libp2p's
own server calls ``host.connect()``, which returns the existing connection).
That connection is closed again and never handed to the swarm.

What one peer may hold (streams being served, dial-backs in flight) and
ask for (requests per window, per peer and per IP) is bounded by
:class:`~node.autonat.server.ServerConfig`; what does not fit is refused at
once, never queued.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from p2pshare.node.autonat.server import RateLimiter, ServerConfig, ip_group, plan_dial
from p2pshare.node.autonat.wire import (
    PROTOCOL_ID,
    Dial,
    DialResponse,
    ResponseStatus,
    WireError,
    encode_response,
    read_message,
)
from p2pshare.node.host import ConnectionPath, DialError, Host, LibP2PByteStream
from p2pshare.node.natinfo.addrs import TcpAddr, encode_addr
from p2pshare.node.slots import SourceSlots

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = ["AutoNATServer", "serve_autonat_server"]

logger = logging.getLogger(__name__)

READ_TIMEOUT = 10.0


def _remote_ip(stream: LibP2PByteStream) -> str | None:
    addr = stream.connection.remote_address()
    return addr[0] if addr else None


def _is_relayed(stream: LibP2PByteStream) -> bool:
    return stream.connection.path is ConnectionPath.RELAYED


class AutoNATServer:
    """Made by :func:`serve_autonat_server`; counts what it did."""

    def __init__(self, host: Host, config: ServerConfig) -> None:
        self.host = host
        self.config = config
        self._limiter = RateLimiter(config, trio.current_time())
        self.streams = SourceSlots(config.max_streams, config.max_streams_per_peer, config.max_streams_per_ip)
        self.jobs = SourceSlots(config.max_jobs, config.max_jobs_per_peer, config.max_jobs_per_ip)
        self.answered: dict[str, int] = {}

    async def handle(self, stream: LibP2PByteStream) -> None:
        # The requester's address and its group (loopback included, as the
        # rate limiter counts it); over a relay, the relay's. Worked out once
        # here for the stream slots, the dial-back slots and the rate limit.
        peer, ip = stream.remote_peer_id_bytes, _remote_ip(stream)
        group = ip_group(ip) if ip is not None else None
        if not self.streams.take(peer, group):
            logger.debug("autonat: %s (or its address) has too many requests open: reset", stream.remote_peer_id)
            await stream.reset()
            return
        try:
            await self._serve(stream, ip, group)
        finally:
            self.streams.give_back(peer, group)

    async def _serve(self, stream: LibP2PByteStream, ip: str | None, group: str | None) -> None:
        try:
            with trio.fail_after(READ_TIMEOUT):
                msg = await read_message(stream.read)
        except (WireError, EOFError, trio.TooSlowError) as e:
            logger.debug("autonat: bad request from %s: %s", stream.remote_peer_id, e)
            await stream.reset()
            return
        if not isinstance(msg, Dial):
            await stream.reset()
            return
        answer = await self._answer(stream, msg, ip, group)
        self.answered[answer.status.name] = self.answered.get(answer.status.name, 0) + 1
        await stream.write(encode_response(answer))

    async def _answer(self, stream: LibP2PByteStream, msg: Dial, ip: str | None, group: str | None) -> DialResponse:
        peer = stream.remote_peer_id_bytes
        plan = plan_dial(peer, ip, _is_relayed(stream), msg, self.config)
        if isinstance(plan, DialResponse):
            logger.info("autonat: refused %s: %s", stream.remote_peer_id, plan.text)
            return plan
        if not self.jobs.take(peer, group):  # before the rate limit: a busy refusal costs no budget
            return DialResponse(ResponseStatus.E_DIAL_REFUSED, "busy")
        try:
            if not self._limiter.allow(peer, trio.current_time(), ip):
                return DialResponse(ResponseStatus.E_DIAL_REFUSED, "too many dials")
            reached = await self._dial_any(stream.remote_peer_id, plan)
        finally:
            self.jobs.give_back(peer, group)
        if reached is None:
            return DialResponse(ResponseStatus.E_DIAL_ERROR, "dial failed")
        return DialResponse(ResponseStatus.OK, "", encode_addr(reached.multiaddr()))

    async def _dial_any(self, peer_id: str, addrs: list[TcpAddr]) -> TcpAddr | None:
        """Dial all ``addrs`` at once on new connections; the first proof wins."""
        won: list[TcpAddr] = []

        async def one(addr: TcpAddr, cancel: trio.CancelScope) -> None:
            try:
                got = await self.host.connect_unknown(addr.multiaddr(), timeout=self.config.dial_timeout, keep=False)
            except (DialError, OSError) as e:
                logger.debug("autonat: dial-back %s failed: %s", addr.multiaddr(), e)
                return
            if got == peer_id:
                won.append(addr)
                cancel.cancel()

        with trio.move_on_after(self.config.dial_timeout):
            async with trio.open_nursery() as nursery:
                for addr in addrs:
                    nursery.start_soon(one, addr, nursery.cancel_scope)
        return won[0] if won else None


async def serve_autonat_server(
    host: Host,
    config: ServerConfig = ServerConfig(),
    *,
    task_status: TaskStatus[AutoNATServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer ``/libp2p/autonat/1.0.0`` dial-back requests until cancelled."""
    server = AutoNATServer(host, config)
    host.set_stream_handler(PROTOCOL_ID, server.handle)
    try:
        task_status.started(server)
        await trio.sleep_forever()
    finally:
        host.remove_stream_handler(PROTOCOL_ID)
