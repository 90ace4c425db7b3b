"""Peer records as discovery returns them: bounded, normalised, merged.

Pure: no trio, no libp2p. Kademlia answers arrive from many peers, each
repeating what it knows, so the same provider shows up many times (py-libp2p
0.8.1 returns one provider 19-20 times); :func:`merge_peer_infos` folds those
into one entry per peer with the union of its addresses.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "MAX_ADDRS_PER_PEER",
    "MAX_ADDR_CHARS",
    "AddrScope",
    "PeerInfo",
    "addr_scope",
    "is_dialable_tcp",
    "merge_peer_infos",
    "normalize_addr",
    "min_scope",
]

# Same bound as node.host's parallel dial; more is noise (or an attack).
MAX_ADDRS_PER_PEER = 16
MAX_ADDR_CHARS = 512
_HOSTS = ("ip4", "ip6", "dns", "dns4", "dns6")
_UNSPECIFIED = frozenset({"0.0.0.0", "::", "0:0:0:0:0:0:0:0"})


@dataclass(frozen=True)
class PeerInfo:
    """A peer and the addresses it may be reached at (no ``/p2p/<self>``)."""

    peer_id: str
    addrs: list[str] = field(default_factory=list)


def normalize_addr(addr: str, peer_id: str) -> str | None:
    """Strip a trailing ``/p2p/<peer_id>``; None for what is not an address.

    Addresses ending in another peer's ``/p2p`` are refused (a relay address
    keeps its ``/p2p/<relay>/p2p-circuit``, which does not end that way), as
    are unspecified hosts (``0.0.0.0``: py-libp2p advertises its listen
    addresses as they are).
    """
    if not addr or len(addr) > MAX_ADDR_CHARS or not addr.startswith("/"):
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


def merge_peer_infos(infos: Iterable[PeerInfo], *, exclude: str | None = None) -> list[PeerInfo]:
    """One entry per peer in first-seen order, addresses merged (bounded)."""
    order: list[str] = []
    addrs: dict[str, dict[str, None]] = {}
    for info in infos:
        if info.peer_id == exclude:
            continue
        if info.peer_id not in addrs:
            order.append(info.peer_id)
            addrs[info.peer_id] = {}
        known = addrs[info.peer_id]
        for raw in info.addrs:
            if len(known) >= MAX_ADDRS_PER_PEER:
                break
            norm = normalize_addr(raw, info.peer_id)
            if norm is not None:
                known.setdefault(norm, None)
    return [PeerInfo(pid, list(addrs[pid])) for pid in order]


class AddrScope(enum.IntEnum):
    """How far an address reaches; larger is wider."""

    LOOPBACK = 0
    PRIVATE = 1
    PUBLIC = 2


def addr_scope(addr: str) -> AddrScope:
    """Scope of a multiaddr by its first host component (DNS counts as public)."""
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


_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def min_scope(addrs: Iterable[str]) -> AddrScope:
    """The narrowest address scope a peer known at ``addrs`` may tell us about.

    A peer we know only at public addresses must not make us dial our own
    loopback or LAN (go-libp2p's WAN DHT filters the same way); a peer on
    our LAN or loopback may.
    """
    scopes = [addr_scope(a) for a in addrs]
    return min(scopes) if scopes else AddrScope.PUBLIC


def is_dialable_tcp(addr: str) -> bool:
    """``/HOST/<h>/tcp/<port>`` exactly: what our host can dial for a Kad RPC."""
    parts = addr.split("/")
    if len(parts) != 5 or parts[0] or parts[1] not in _HOSTS or parts[3] != "tcp":
        return False
    if parts[1] in ("ip4", "ip6"):
        try:
            ip = ipaddress.ip_address(parts[2])
        except ValueError:
            return False
        if ip.is_unspecified or ip.is_multicast:
            return False
    return parts[4].isdigit() and 0 < int(parts[4]) < 65536
