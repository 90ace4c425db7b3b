"""Address facts shared by AutoNAT, DCUtR and NAT discovery (pure).

"Private" here means a range a host sits behind a NAT in, or that never
leaves the host: loopback, RFC 1918, carrier-grade NAT space
(100.64.0.0/10), link-local, unique-local IPv6, unspecified, multicast and
reserved. Documentation ranges count as public, so a lab built from them
behaves like the internet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import multiaddr

__all__ = [
    "TcpAddr",
    "is_public_ip",
    "parse_tcp_addr",
    "tcp_multiaddr",
    "decode_addrs",
    "encode_addr",
    "same_public_ip",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NON_PUBLIC = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
]
_MAX_ADDR_BYTES = 512


def is_public_ip(ip: str | IPAddress) -> bool:
    """True unless ``ip`` is loopback/private/CGNAT/link-local/reserved."""
    try:
        addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return not any(addr.version == net.version and addr in net for net in _NON_PUBLIC)


@dataclass(frozen=True)
class TcpAddr:
    """A plain ``/ip4|ip6/<ip>/tcp/<port>`` address (optionally ``/p2p/<id>``)."""

    ip: str
    port: int
    peer_id: str | None = None

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.ip).version

    @property
    def public(self) -> bool:
        return is_public_ip(self.ip)

    def multiaddr(self) -> str:
        return tcp_multiaddr(self.ip, self.port)


def tcp_multiaddr(ip: str, port: int) -> str:
    fam = "ip6" if ":" in ip else "ip4"
    return f"/{fam}/{ip}/tcp/{port}"


def parse_tcp_addr(addr: str | bytes) -> TcpAddr | None:
    """A :class:`TcpAddr` for a direct TCP multiaddr; None for anything else
    (circuit, QUIC, websocket, DNS, malformed, port 0)."""
    if isinstance(addr, bytes) and len(addr) > _MAX_ADDR_BYTES:
        return None
    if isinstance(addr, str) and len(addr) > 4 * _MAX_ADDR_BYTES:
        return None
    try:
        maddr = multiaddr.Multiaddr(addr)
        parts = [(p.name, v) for p, v in maddr.items()]
    except Exception:
        return None
    if len(parts) < 2 or parts[0][0] not in ("ip4", "ip6") or parts[1][0] != "tcp":
        return None
    peer: str | None = None
    if len(parts) == 3 and parts[2][0] == "p2p":
        peer = str(parts[2][1])
    elif len(parts) != 2:
        return None
    try:
        ip = str(ipaddress.ip_address(str(parts[0][1])))
        port = int(str(parts[1][1]))
    except ValueError:
        return None
    if not 0 < port < 65536:
        return None
    return TcpAddr(ip, port, peer)


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
