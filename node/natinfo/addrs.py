"""Binary address lists shared by AutoNAT, DCUtR and NAT discovery (pure).

The typed address and the public/private rule live in
:mod:`p2pshare.sharecode.multiaddrs` (the one multiaddr module); they are
re-exported here for the protocol code that imports them from this place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import multiaddr

from p2pshare.sharecode.multiaddrs import TcpAddr, ip_group, is_public_ip, parse_tcp_addr, tcp_multiaddr

__all__ = [
    "TcpAddr",
    "ip_group",
    "is_public_ip",
    "parse_tcp_addr",
    "tcp_multiaddr",
    "decode_addrs",
    "encode_addr",
    "same_public_ip",
]


def decode_addrs(raw: Iterable[bytes], limit: int) -> list[TcpAddr]:
    """Decode up to ``limit`` binary multiaddrs; skip what is not plain TCP."""
    out: list[TcpAddr] = []
    for b in raw:
        if len(out) >= limit:
            break
        a = parse_tcp_addr(b)
        if a is not None and a not in out:
            out.append(a)
    return out


def encode_addr(addr: str) -> bytes:
    """The binary form of a multiaddr string (ValueError when malformed)."""
    try:
        return bytes(multiaddr.Multiaddr(addr).to_bytes())
    except Exception as e:
        raise ValueError(f"bad multiaddr {addr[:200]!r}: {e}") from None


def same_public_ip(a: Sequence[TcpAddr], b: Sequence[TcpAddr]) -> bool:
    """Whether two peers show a common public IP (behind the same NAT)."""
    ours = {x.ip for x in a if x.public}
    return any(x.public and x.ip in ours for x in b)
