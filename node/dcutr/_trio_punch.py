"""TCP hole punching with plain trio sockets (the dialing half of a round).

Every dial leaves FROM our listen port (``SO_REUSEADDR`` + ``SO_REUSEPORT``;
py-libp2p's TCP listener sets both), so the NAT mapping it opens is the one
we announced. All targets are dialed at once in one nursery; the first
socket to connect wins and cancels the rest. A refused SYN (the peer's NAT
answered with RST because our SYN arrived before theirs had left) is
re-dialed after a small random delay until the round's deadline, at most
``max_dials_per_target`` times per target and ``max_dials_per_round`` in
all (:class:`~node.dcutr.budget.DialBudget`: the targets are the peer's
word, maybe a third party's closed ports).

With a fresh port per round the port also listens (``listener``): once both
NATs hold the right mappings, a peer SYN that arrives between two of our
dials (our last one just refused by the peer's own kernel) is accepted
instead of answered with RST, so the two sides need not hit the moment when
both sockets are in SYN-SENT.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import random
import socket as stdlib_socket
from dataclasses import dataclass

import trio

from p2pshare.node.dcutr.budget import DialBudget
from p2pshare.node.dcutr.policy import PunchConfig, redial_delay
from p2pshare.node.natinfo.addrs import TcpAddr

__all__ = ["Punched", "punch_tcp", "reuse_socket"]

logger = logging.getLogger(__name__)

# errno values after which dialing the same 4-tuple again is pointless.
_FATAL = {errno.EADDRNOTAVAIL, errno.EADDRINUSE, errno.EINVAL, errno.EAFNOSUPPORT}
_MAX_STRAY = 16  # connections from strangers accepted (and closed) per round


def _plain_ip(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


@dataclass
class Punched:
    sock: trio.socket.SocketType
    target: TcpAddr
    dials: int


def reuse_socket(local_ip: str) -> trio.socket.SocketType:
    family = stdlib_socket.AF_INET6 if ":" in local_ip else stdlib_socket.AF_INET
    sock = trio.socket.socket(family, stdlib_socket.SOCK_STREAM)
    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEPORT, 1)
    return sock


async def punch_tcp(
    local: tuple[str, int],
    targets: list[TcpAddr],
    cfg: PunchConfig,
    rng: random.Random,
    deadline: float,
    listener: trio.socket.SocketType | None = None,
) -> Punched | None:
    """Dial every target from ``local`` (and accept from them on ``listener``,
    a socket listening on ``local``) until one connects, ``deadline`` passes
    or ``cfg``'s dial caps are spent."""
    winner: list[Punched] = []
    budget = DialBudget(cfg.max_dials_per_target, cfg.max_dials_per_round)  # also counts the dials
    wanted = {(ipaddress.ip_address(t.ip), t.port): t for t in targets}

    async def accept(lst: trio.socket.SocketType, done: trio.CancelScope) -> None:
        for _ in range(_MAX_STRAY):
            sock, addr = await lst.accept()
            target = wanted.get((_plain_ip(str(addr[0])), int(addr[1])))
            if target is None or winner:
                sock.close()  # a stranger, or we already have one
                continue
            winner.append(Punched(sock, target, 0))
            done.cancel()
            return

    async def dial_target(target: TcpAddr, done: trio.CancelScope) -> None:
        local_ip = local[0]
        if (":" in local_ip) != (":" in target.ip):
            local_ip = "::" if ":" in target.ip else "0.0.0.0"
        while trio.current_time() < deadline and budget.take(target):
            if budget.counts[target] == 1:
                logger.debug("dcutr: first dial %s from :%d", target.multiaddr(), local[1])
            sock = reuse_socket(local_ip)
            try:
                await sock.bind((local_ip, local[1]))
                await sock.connect((target.ip, target.port))
            except OSError as e:
                sock.close()
                logger.debug("dcutr: dial %s from :%d: %s", target.multiaddr(), local[1], e)
                if e.errno in _FATAL:
                    return
                await trio.sleep(redial_delay(rng, cfg))
                continue
            except BaseException:
                sock.close()
                raise
            if winner:
                sock.close()
                return
            winner.append(Punched(sock, target, 0))
            done.cancel()
            return

    with trio.move_on_at(deadline):
        async with trio.open_nursery() as nursery:
            if listener is not None:
                nursery.start_soon(accept, listener, nursery.cancel_scope)
            for t in targets:
                nursery.start_soon(dial_target, t, nursery.cancel_scope)
    if not winner:
        logger.debug(
            "dcutr: no connection from :%d after %d dial(s) to %s",
            local[1],
            budget.spent,
            ", ".join(t.multiaddr() for t in targets),
        )
        return None
    won = winner[0]
    won.dials = budget.spent
    return won
