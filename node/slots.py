"""Bounded work in progress without a queue (pure: no trio, no sockets).

Used where a peer can ask for work at will: the AutoNAT server's streams
and dial-backs, and the STUN responder's connections. The STUN responder
used to accept every connection and make it wait for a handling slot with
no deadline: each waiting connection held a file descriptor, and 20,000
idle connections from one host (two processes, 2.3 s) took a real
``p2pshare relay`` to its descriptor limit, so its libp2p listener, its
dials and its files failed with EMFILE. With :class:`Slots` a connection
that finds no room is closed at once, and one address (``ip_group``: an
IPv6 /64 counts as one) cannot take every slot.
"""

from __future__ import annotations

__all__ = ["Slots", "SourceSlots"]


class Slots:
    """Work in progress: at most ``total`` at once and ``per_key`` per key; no queue.

    ``take`` says whether there is room (and takes it); ``give_back`` returns
    it. Keys without work in progress are dropped, so the table holds at
    most ``total`` keys.
    """

    def __init__(self, total: int, per_key: int) -> None:
        self.total = total
        self.per_key = per_key
        self._held: dict[object, int] = {}
        self.in_use = 0

    def take(self, key: object) -> bool:
        held = self._held.get(key, 0)
        if self.in_use >= self.total or held >= self.per_key:
            return False
        self._held[key] = held + 1
        self.in_use += 1
        return True

    def give_back(self, key: object) -> None:
        held = self._held[key] - 1
        if held:
            self._held[key] = held
        else:
            del self._held[key]
        self.in_use -= 1

    def keys(self) -> int:
        return len(self._held)


class SourceSlots:
    """:class:`Slots` per peer and per address group at once.

    Peer IDs cost nothing to make, so a per-peer bound alone lets one host
    with many identities take every slot; the group (``ip_group``: the IPv4
    address, the IPv6 /64) bounds them together. A ``None`` group (no IP
    known) is bounded by the peer and the total only.
    """

    def __init__(self, total: int, per_peer: int, per_group: int) -> None:
        self.peers = Slots(total, per_peer)
        self.groups = Slots(total, per_group)

    @property
    def in_use(self) -> int:
        return self.peers.in_use

    def take(self, peer: object, group: str | None) -> bool:
        if not self.peers.take(peer):
            return False
        if group is not None and not self.groups.take(group):
            self.peers.give_back(peer)
            return False
        return True

    def give_back(self, peer: object, group: str | None) -> None:
        self.peers.give_back(peer)
        if group is not None:
            self.groups.give_back(group)
