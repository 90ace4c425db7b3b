"""AutoNAT server policy (pure): what to dial back, and whether to at all.

The spec's protections: never accept requests over a relayed connection;
dial only addresses on the IP the requester is observed from (other IPs in
the request are replaced by it, as go-libp2p does, so a NATed peer that
sends its LAN address still gets its port tested on its public IP); at most
:data:`~node.autonat.wire.MAX_ADDRS` addresses; the requested peer ID must be
the requester's; rate limits per peer and global, in fixed windows.

Ours also bound what a peer with many identities could grow (issue 9):
requests per requester IP (an IPv6 /64 counts as one) in the same windows,
so one host cannot spend the global budget; dial-backs in flight, in all
and per peer; requests being read or answered, in all and per peer. No
queue anywhere: what does not fit is refused at once (the spec's
E_DIAL_REFUSED, or a reset stream before a request is read). Every table
here holds only what is admitted, so its size is bounded by the limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pshare.node.autonat.wire import MAX_ADDRS, Dial, DialResponse, ResponseStatus
from p2pshare.node.natinfo.addrs import TcpAddr, ip_group, is_public_ip, parse_tcp_addr
from p2pshare.node.slots import Slots

__all__ = ["ServerConfig", "RateLimiter", "Slots", "ip_group", "plan_dial"]


@dataclass(frozen=True)
class ServerConfig:
    dial_timeout: float = 10.0  # bound on one dial-back (TCP + Noise)
    per_peer_max: int = 3  # requests per peer per window
    per_ip_max: int = 10  # requests per requester IP (IPv6: /64) per window: a third of global_max
    global_max: int = 30  # requests per window, all peers
    window: float = 60.0
    max_addrs: int = MAX_ADDRS
    max_jobs: int = 8  # dial-backs in flight, all peers (each dials up to max_addrs at once)
    max_jobs_per_peer: int = 1
    max_jobs_per_ip: int = 2  # per requester IP (IPv6: /64): many identities, one host
    max_streams: int = 64  # requests being read or answered at once, all peers
    max_streams_per_peer: int = 4
    max_streams_per_ip: int = 16  # a quarter of max_streams
    # Dial back requesters seen from private/loopback IPs (loopback tests,
    # LAN-only deployments). Off by default: such verdicts mean nothing.
    dial_private: bool = False

    def __post_init__(self) -> None:
        if self.dial_timeout <= 0 or self.window <= 0:
            raise ValueError("dial_timeout and window must be positive")
        limits = (self.per_peer_max, self.per_ip_max, self.global_max, self.max_addrs)
        jobs = (self.max_jobs, self.max_jobs_per_peer, self.max_jobs_per_ip)
        streams = (self.max_streams, self.max_streams_per_peer, self.max_streams_per_ip)
        if min(*limits, *jobs, *streams) < 1:
            raise ValueError("limits must be at least 1")


class RateLimiter:
    """Fixed-window counters; ``allow`` counts the request when it allows it.

    Only allowed requests are recorded, so each table holds at most
    ``global_max`` entries.
    """

    def __init__(self, config: ServerConfig, now: float) -> None:
        self._cfg = config
        self._window_end = now + config.window
        self._per_peer: dict[bytes, int] = {}
        self._per_ip: dict[str, int] = {}
        self._total = 0

    def allow(self, peer: bytes, now: float, ip: str | None = None) -> bool:
        if now >= self._window_end:
            self._per_peer.clear()
            self._per_ip.clear()
            self._total = 0
            self._window_end = now + self._cfg.window
        count = self._per_peer.get(peer, 0)
        if count >= self._cfg.per_peer_max or self._total >= self._cfg.global_max:
            return False
        group = ip_group(ip) if ip is not None else None
        if group is not None and self._per_ip.get(group, 0) >= self._cfg.per_ip_max:
            return False
        self._per_peer[peer] = count + 1
        if group is not None:
            self._per_ip[group] = self._per_ip.get(group, 0) + 1
        self._total += 1
        return True

    def tracked(self) -> int:
        """Entries held (peers and IPs): at most twice ``global_max``."""
        return len(self._per_peer) + len(self._per_ip)


def plan_dial(
    requester: bytes,
    observed_ip: str | None,
    relayed: bool,
    request: Dial,
    config: ServerConfig,
) -> list[TcpAddr] | DialResponse:
    """The addresses to dial back, or the refusal to answer with."""
    if relayed:
        return DialResponse(ResponseStatus.E_DIAL_REFUSED, "request came over a relayed connection")
    if request.peer_id and request.peer_id != requester:
        return DialResponse(ResponseStatus.E_BAD_REQUEST, "peer id mismatch")
    if observed_ip is None:
        return DialResponse(ResponseStatus.E_DIAL_REFUSED, "cannot tell the requester's IP")
    if not config.dial_private and not is_public_ip(observed_ip):
        return DialResponse(ResponseStatus.E_DIAL_REFUSED, "requester's IP is not public")
    obs_v6 = ":" in observed_ip
    out: list[TcpAddr] = []
    for raw in request.addrs:
        addr = parse_tcp_addr(raw)
        if addr is None or (":" in addr.ip) != obs_v6:
            continue
        candidate = TcpAddr(observed_ip, addr.port)
        if candidate not in out:
            out.append(candidate)
        if len(out) >= config.max_addrs:
            break
    if not out:
        return DialResponse(ResponseStatus.E_DIAL_REFUSED, "no dialable addresses")
    return out
