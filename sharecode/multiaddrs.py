"""The project's one multiaddr module: every address the node parses,
classifies or formats goes through here (pure: no trio, no py-libp2p).

Typed forms: :class:`TcpAddr` (``/ip4|ip6/IP/tcp/PORT[/p2p/ID]``) and
:class:`CircuitAddr` (``<relay>/p2p/RELAY/p2p-circuit[/p2p/TARGET]``);
IP classification (:func:`ip_class`, :func:`is_public_ip`, the DHT's
:func:`addr_scope`); and the small address rules the node applies (loopback
filter, legacy IP:PORT pick, peer-record normalisation, dialable-by-Kad).
These used to be hand-written ``split("/")`` parsers at each call site; they
live here so every site agrees and the odd cases are tested once. Each rule
keeps the exact semantics of the parser it replaced, malformed text
included (tests/sharecode/test_multiaddrs.py checks them against the old
code). Strict validation of a share code's addresses is
:mod:`.addresses`.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import multiaddr

__all__ = [
    "AddrScope",
    "CircuitAddr",
    "IpClass",
    "ip_group",
    "TcpAddr",
    "addr_scope",
    "circuit_multiaddr",
    "circuit_names_other",
    "first_tcp_port",
    "ip_class",
    "ip_text",
    "is_circuit",
    "is_dialable_tcp",
    "is_loopback_addr",
    "is_loopback_ip",
    "is_public_ip",
    "legacy_endpoint",
    "normalize_peer_addr",
    "peer_addr_problem",
    "parse_circuit",
    "parse_tcp_addr",
    "relay_of",
    "relay_part",
    "same_ip4_prefix",
    "split_dnsaddr",
    "split_first_peer",
    "tcp_multiaddr",
    "trailing_peer",
    "unspecified_host",
    "with_peer",
    "without_loopback",
]


# -- IP classification ------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class IpClass(enum.Enum):
    """Where an IP reaches, in the NAT sense (see :func:`ip_class`)."""

    LOOPBACK = "loopback"
    LINK_LOCAL = "link-local"
    PRIVATE = "private"
    PUBLIC = "public"


# "Private" in the NAT sense: a range a host sits behind a NAT in, or that
# never leaves the host: RFC 1918, carrier-grade NAT (100.64.0.0/10),
# unique-local IPv6, unspecified, multicast and reserved. Documentation
# ranges count as public, so a lab built from them behaves like the internet.
_LOOPBACK_NETS = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128")]
_LINK_LOCAL_NETS = [ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10")]
_PRIVATE_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "fc00::/7",
        "ff00::/8",
    )
]


def _in(addr: IPAddress, nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    return any(addr.version == net.version and addr in net for net in nets)


def ip_class(ip: str | IPAddress) -> IpClass | None:
    """The NAT-sense class of ``ip`` (IPv4-mapped IPv6 counts as its IPv4);
    None when ``ip`` is not an IP literal."""
    try:
        addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if _in(addr, _LOOPBACK_NETS):
        return IpClass.LOOPBACK
    if _in(addr, _LINK_LOCAL_NETS):
        return IpClass.LINK_LOCAL
    return IpClass.PRIVATE if _in(addr, _PRIVATE_NETS) else IpClass.PUBLIC


def is_public_ip(ip: str | IPAddress) -> bool:
    """True unless ``ip`` is loopback/private/CGNAT/link-local/reserved (or not an IP)."""
    return ip_class(ip) is IpClass.PUBLIC


def address_to_give(addrs: Sequence[str]) -> tuple[str | None, bool]:
    """The address of ours to hand to other peers: the first public one (a
    DNS name counts as public), else the first; and whether it is public."""
    public = [a for a in addrs if (ip := ip_text(a)) is None or is_public_ip(ip)]
    best = (public or list(addrs))[:1]
    return (best[0] if best else None), bool(public)


def is_loopback_ip(ip: str) -> bool:
    """The textual loopback test the node has always used (``127.*``, ``::1``)."""
    return ip.startswith("127.") or ip == "::1"


class AddrScope(enum.IntEnum):
    """How far an address reaches; larger is wider (the DHT's view)."""

    LOOPBACK = 0
    PRIVATE = 1
    PUBLIC = 2


_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def addr_scope(addr: str) -> AddrScope:
    """Scope of a multiaddr by its first host component (DNS counts as public).

    This is the DHT's filter and uses Python's ``is_private`` (documentation
    ranges are private here, unlike :func:`ip_class`): kept as it was."""
    parts = addr.split("/")
    if len(parts) < 3 or parts[1] not in ("ip4", "ip6"):
        return AddrScope.PUBLIC
    try:
        ip = ipaddress.ip_address(parts[2])
    except ValueError:
        return AddrScope.PUBLIC
    if ip.is_loopback:
        return AddrScope.LOOPBACK
    if ip.is_private or ip.is_link_local or ip in _CGNAT or ip.is_unspecified:
        return AddrScope.PRIVATE
    return AddrScope.PUBLIC


# -- typed TCP addresses ----------------------------------------------------

_MAX_ADDR_BYTES = 512


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
    """``/ip4/IP/tcp/PORT`` or ``/ip6/IP/tcp/PORT`` (IPv6 when ``ip`` has a colon)."""
    fam = "ip6" if ":" in ip else "ip4"
    return f"/{fam}/{ip}/tcp/{port}"


def parse_tcp_addr(addr: str | bytes) -> TcpAddr | None:
    """A :class:`TcpAddr` for a direct TCP multiaddr (text or binary); None for
    anything else (circuit, QUIC, websocket, DNS, malformed, port 0)."""
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


def _strip_parts(addr: str) -> list[str]:
    return addr.strip("/").split("/")


def ip_text(addr: str) -> str | None:
    """The IP component's text of an ``/ip4|ip6/...`` address, unchecked;
    None for other hosts (DNS...). Lenient on slashes at either end."""
    parts = _strip_parts(addr)
    return parts[1] if len(parts) > 1 and parts[0] in ("ip4", "ip6") else None


def same_ip4_prefix(ip: str, addrs: Iterable[str]) -> bool:
    """Whether one of ``addrs`` is an ``/ip4/`` address in ``ip``'s /24 (our LAN)."""
    prefix = ip.rsplit(".", 1)[0] + "."
    return any(f"/ip4/{prefix}" in own for own in addrs)


def is_loopback_addr(addr: str) -> bool:
    return addr.startswith(("/ip4/127.", "/ip6/::1/"))


def without_loopback(addrs: list[str]) -> list[str]:
    """Loopback addresses only help on this machine: keep them only when
    there is nothing else (all-local tests and demos)."""
    others = [a for a in addrs if not is_loopback_addr(a)]
    return others or addrs


def legacy_endpoint(addrs: Iterable[str]) -> tuple[str, int] | None:
    """The one plain IP:PORT a legacy code carries: the first direct TCP
    address, preferring non-loopback, then IPv4. A malformed port raises
    ValueError (addresses come from our own listeners)."""
    candidates: list[tuple[str, int]] = []
    for addr in addrs:
        parts = _strip_parts(addr)
        if len(parts) >= 4 and parts[0] in ("ip4", "ip6") and parts[2] == "tcp" and "p2p-circuit" not in parts:
            candidates.append((parts[1], int(parts[3])))
    if not candidates:
        return None
    candidates.sort(key=lambda hp: (is_loopback_ip(hp[0]), ":" in hp[0]))
    return candidates[0]


def first_tcp_port(addrs: Iterable[str]) -> int | None:
    """The TCP port of the first ``/HOST/<h>/tcp/PORT...`` address (any host)."""
    for addr in addrs:
        parts = _strip_parts(addr)
        if len(parts) >= 4 and parts[2] == "tcp":
            return int(parts[3])
    return None


def unspecified_host(addr: str) -> tuple[str, str] | None:
    """``(family, rest)`` for ``/ip4/0.0.0.0/REST`` or ``/ip6/::/REST`` (a
    listen-everywhere address); None for anything else."""
    parts = addr.split("/")
    if len(parts) < 3 or parts[1] not in ("ip4", "ip6"):
        return None
    try:
        ip = ipaddress.ip_address(parts[2])
    except ValueError:
        return None
    if not ip.is_unspecified:
        return None
    return parts[1], "/".join(parts[3:])


# -- peer IDs and circuit addresses -----------------------------------------


def split_first_peer(addr: str) -> tuple[str, str] | None:
    """``(address before /p2p/, that peer ID)``; None without ``/p2p/``."""
    if "/p2p/" not in addr:
        return None
    base, _, rest = addr.partition("/p2p/")
    return base, rest.split("/")[0]


def trailing_peer(addr: str) -> str | None:
    """The peer ID of a trailing ``/p2p/<id>`` (or ``/ipfs/<id>``), else None."""
    parts = addr.rstrip("/").split("/")
    return parts[-1] if len(parts) >= 3 and parts[-2] in ("p2p", "ipfs") else None


def with_peer(addr: str, peer_id: str) -> str | None:
    """``addr`` ending in ``/p2p/<peer_id>`` (appended when absent); None
    when it names another peer."""
    suffix = f"/p2p/{peer_id}"
    if "/p2p/" in addr and not addr.endswith(suffix):
        return None
    return addr if addr.endswith(suffix) else addr + suffix


_UNSPECIFIED = frozenset({"0.0.0.0", "::", "0:0:0:0:0:0:0:0"})
_DIAL_HOSTS = ("ip4", "ip6", "dns", "dns4", "dns6")


def normalize_peer_addr(addr: str, peer_id: str, max_chars: int) -> str | None:
    """Strip a trailing ``/p2p/<peer_id>``; None for what is not an address.

    Addresses ending in another peer's ``/p2p`` are refused (a relay address
    keeps its ``/p2p/<relay>/p2p-circuit``, which does not end that way), as
    are unspecified hosts (``0.0.0.0``: py-libp2p advertises its listen
    addresses as they are).
    """
    if not addr or len(addr) > max_chars or not addr.startswith("/"):
        return None
    if not addr.isprintable() or " " in addr:
        return None
    parts = addr.rstrip("/").split("/")
    if len(parts) >= 3 and parts[1] in ("ip4", "ip6") and parts[2] in _UNSPECIFIED:
        return None  # a listen address, never a reachable one
    if len(parts) >= 3 and parts[-2] in ("p2p", "ipfs"):
        if parts[-1] != peer_id:
            return None
        parts = parts[:-2]
    out = "/".join(parts)
    return out if len(out) > 1 else None


def is_dialable_tcp(addr: str) -> bool:
    """``/HOST/<h>/tcp/<port>`` exactly: what our host can dial for a Kad RPC."""
    parts = addr.split("/")
    if len(parts) != 5 or parts[0] or parts[1] not in _DIAL_HOSTS or parts[3] != "tcp":
        return False
    if parts[1] in ("ip4", "ip6"):
        try:
            ip = ipaddress.ip_address(parts[2])
        except ValueError:
            return False
        if ip.is_unspecified or ip.is_multicast:
            return False
    return parts[4].isdigit() and 0 < int(parts[4]) < 65536


def peer_addr_problem(addr: str) -> str | None:
    """What is wrong with ``addr`` as the address of a given peer (a relay,
    a bootstrap node): it must parse as a multiaddr and end in
    ``/p2p/<peer id>``. None when it is fine. The words are for a person who
    copied an address by hand."""
    example = "not a multiaddr (e.g. /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW…)"
    words = addr.split()
    pasted = [part for part in words[1:] if part.startswith("/")]
    if pasted and len(addr) <= 4096:  # a relay's or node's whole first line: its peer ID, then its addresses
        one = pasted[0] if "/p2p/" in pasted[0] else f"{pasted[0]}/p2p/{words[0]}"
        return f"give one address, not the whole line the node printed (e.g. {one[:300]})"
    if not addr.startswith("/") or len(addr) > 1024:
        return example
    peer = trailing_peer(addr)
    if peer is not None:
        from .errors import ShareCodeError
        from .peerid import validate_peer_id

        try:
            validate_peer_id(peer)
        except ShareCodeError as exc:
            return str(exc)
    try:
        multiaddr.Multiaddr(addr)
    except Exception:
        return example
    if peer is None:
        return "it must end in /p2p/<peer id> (the peer ID the node printed)"
    return None


def split_dnsaddr(addr: str) -> tuple[str, str | None] | None:
    """``(hostname, peer_id or None)`` for a ``/dnsaddr/...`` address, else None."""
    parts = _strip_parts(addr)
    if len(parts) < 2 or parts[0] != "dnsaddr" or not parts[1]:
        return None
    peer = None
    if len(parts) == 4 and parts[2] in ("p2p", "ipfs"):
        peer = parts[3]
    elif len(parts) != 2:
        return None
    return parts[1], peer


_CIRCUIT = "/p2p-circuit"


def is_circuit(addr: str) -> bool:
    """Whether ``addr`` goes through a relay (contains ``/p2p-circuit``)."""
    return _CIRCUIT in addr


def relay_part(addr: str) -> str:
    """What precedes ``/p2p-circuit`` (the relay's own address); all of ``addr`` if none."""
    return addr.split(_CIRCUIT, 1)[0]


def circuit_multiaddr(relay: str, target_peer_id: str) -> str:
    """``<relay>/p2p-circuit/p2p/<target>``; ``relay`` ends in ``/p2p/<relay-id>``."""
    return f"{relay}{_CIRCUIT}/p2p/{target_peer_id}"


def circuit_names_other(addr: str, peer_id: str) -> bool:
    """Whether a full circuit address names a target other than ``peer_id``."""
    return f"{_CIRCUIT}/p2p/" in addr and not addr.rstrip("/").endswith(peer_id)


def relay_of(addr: str) -> tuple[str, str] | None:
    """``(relay peer ID, relay address with /p2p/<relay>)`` of a relay or circuit
    address; None when the relay part is malformed or has no ``/p2p``; the
    peer ID is "" when ``/p2p`` is empty."""
    text = relay_part(addr)
    try:
        maddr = multiaddr.Multiaddr(text)
        relay = maddr.value_for_protocol("p2p")
    except Exception:
        return None
    return str(relay) if relay else "", text


@dataclass(frozen=True)
class CircuitAddr:
    """``<relay>/p2p-circuit[/p2p/<target>]``: ``relay`` is the relay's own
    address ending in ``/p2p/<relay_peer_id>`` (it may be just that)."""

    relay: str
    relay_peer_id: str
    target_peer_id: str | None = None

    def multiaddr(self) -> str:
        if self.target_peer_id is None:
            return self.relay + _CIRCUIT
        return circuit_multiaddr(self.relay, self.target_peer_id)


def parse_circuit(addr: str) -> CircuitAddr | None:
    """A :class:`CircuitAddr`, or None for a direct or malformed address."""
    if not is_circuit(addr):
        return None
    relay, _, tail = addr.partition(_CIRCUIT)
    target: str | None = None
    if tail:
        parts = tail.split("/")
        if len(parts) != 3 or parts[1] != "p2p" or not parts[2]:
            return None
        target = parts[2]
    found = relay_of(relay)
    if found is None or not found[0]:
        return None
    return CircuitAddr(relay, found[0], target)


def ip_group(ip: str) -> str:
    """What one requester's address counts as (per-address limits): the IPv4 address, or the IPv6 /64."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if addr.version == 6:
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)
