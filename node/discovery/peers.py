"""Peer records as discovery returns them: bounded, normalised, merged.

Pure: no trio, no libp2p. Kademlia answers arrive from many peers, each
repeating what it knows, so the same provider shows up many times (py-libp2p
0.8.1 returns one provider 19-20 times); :func:`merge_peer_infos` folds those
into one entry per peer with the union of its addresses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from p2pshare.sharecode.multiaddrs import AddrScope, addr_scope, is_dialable_tcp, normalize_peer_addr

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


@dataclass(frozen=True)
class PeerInfo:
    """A peer and the addresses it may be reached at (no ``/p2p/<self>``)."""

    peer_id: str
    addrs: list[str] = field(default_factory=list)


def normalize_addr(addr: str, peer_id: str) -> str | None:
    """Strip a trailing ``/p2p/<peer_id>``; None for what is not an address
    (see :func:`p2pshare.sharecode.multiaddrs.normalize_peer_addr`)."""
    return normalize_peer_addr(addr, peer_id, MAX_ADDR_CHARS)


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


def min_scope(addrs: Iterable[str]) -> AddrScope:
    """The narrowest address scope a peer known at ``addrs`` may tell us about.

    A peer we know only at public addresses must not make us dial our own
    loopback or LAN (go-libp2p's WAN DHT filters the same way); a peer on
    our LAN or loopback may.
    """
    scopes = [addr_scope(a) for a in addrs]
    return min(scopes) if scopes else AddrScope.PUBLIC
