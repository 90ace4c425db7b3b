"""Our listen port's public mapping from identify's observedAddr (pure).

Why: DCUtR's CONNECT must carry the address the peer can reach us at. A
node given ``--relay`` learns it from that relay (STUN, else identify). A
node given only ``--bootstrap`` (AutoRelay finds its relays later, or never)
had no source at all: its CONNECT carried only its LAN address, the peer
dropped it ("CONNECT has no address we can dial") and every round failed
(issue 10, js relays at 80 ms). Every libp2p peer answers identify, so the
bootstrap peers can tell us too.

Which peers to ask (:func:`identify_sources`) and what their answers say
(:func:`mapping_from_sightings`) are decided here; the trio side
(:mod:`._trio_identify`) only asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from p2pshare.sharecode.multiaddrs import ip_text, is_circuit, is_public_ip, split_first_peer

__all__ = [
    "ASK",
    "QUORUM",
    "Sighting",
    "identify_sources",
    "predict_mapping",
    "mapping_from_sightings",
    "symmetric_ip",
]

ASK = 3  # peers asked at once: a second answer can expose a NAT that changes ports per destination
QUORUM = 2  # answers that settle it (fewer when fewer peers were asked)


@dataclass(frozen=True)
class Sighting:
    """How one peer saw one of our connections: its observedAddr and our local port."""

    ip: str
    port: int
    local_port: int


def identify_sources(relays: Sequence[str], peers: Sequence[str]) -> list[str]:
    """Whom to ask, best first: our relays (as before: we hold connections to
    them), then peers with a public IP, then peers known by a DNS name (they
    may not resolve). A peer with a private or loopback IP sees our LAN side,
    not the NAT's: it tells nothing worth announcing, so it is not asked. One
    address per peer; circuit addresses and addresses without ``/p2p/`` are
    skipped."""
    seen: set[str] = set()
    ranked: list[tuple[int, str]] = []
    for i, addr in enumerate([*relays, *peers]):
        split = split_first_peer(addr)
        if split is None or is_circuit(addr) or split[1] in seen:
            continue
        ip = ip_text(split[0])
        if i < len(relays):
            rank = 0
        elif ip is None:
            rank = 2
        elif is_public_ip(ip):
            rank = 1
        else:
            continue
        seen.add(split[1])
        ranked.append((rank, addr))
    return [addr for _, addr in sorted(ranked, key=lambda r: r[0])]


def predict_mapping(obs_ip: str, obs_port: int, local_port: int, listen_port: int) -> str | None:
    """One sighting: the listen port's public mapping, if the NAT preserves ports."""
    if obs_port != local_port:
        return None
    return f"/ip4/{obs_ip}/tcp/{listen_port}"


def mapping_from_sightings(sightings: Sequence[Sighting], listen_port: int) -> str | None:
    """The listen port's public mapping, when every sighting agrees.

    Each connection to a peer leaves from its own local port; a NAT that kept
    every one of those port numbers, and showed one IP to all peers, keeps the
    listen port's number too (port-preserving, endpoint-independent). A port
    that changed (symmetric NAT) or two IPs (several NATs or uplinks) make the
    mapping unpredictable: nothing is announced rather than a wrong address.
    Sightings of a private IP (a peer on our LAN) are ignored when a public
    one exists."""
    public = [s for s in sightings if is_public_ip(s.ip)]
    use = public or list(sightings)
    if not use or any(s.port != s.local_port for s in use) or len({s.ip for s in use}) != 1:
        return None
    return predict_mapping(use[0].ip, use[0].port, use[0].local_port, listen_port)


def symmetric_ip(sightings: Sequence[Sighting]) -> str | None:
    """Our public IP when the sightings show one public IP but changed ports:
    the mapping cannot be announced, yet birthday port probing
    (node.dcutr.birthday) needs only the IP. None when they disagree on the
    IP, show no public one, or kept every port."""
    public = [s for s in sightings if is_public_ip(s.ip)]
    if not public or len({s.ip for s in public}) != 1 or all(s.port == s.local_port for s in public):
        return None
    return public[0].ip
