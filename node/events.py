"""What a node reports: one module for its event types (pure: no trio, no py-libp2p).

``ConnectionPath`` is how a connection to a peer runs. Its values are the
strings the CLI's ``--json`` events always carried, so the wire of our own
output does not change.

``NodeEvent`` is every event a :class:`~p2pshare.node.api.Node` hands to its
one ``on_event`` callback: the transfer's (both sides), NAT traversal's
(hole punching, the NAT mapping, reachability), and the receiver's
connection events. Consumers dispatch with ``isinstance`` and ignore the
rest, so a new event type never breaks them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from p2pshare.transfer.events import TransferEvent

__all__ = [
    "ConnectionPath",
    "Connected",
    "PathUpgraded",
    "Upgraded",
    "UpgradeFailed",
    "ReachabilityChanged",
    "NatDiscovered",
    "RelaysChanged",
    "AddressesChanged",
    "RelayServiceChanged",
    "Waiting",
    "TraversalEvent",
    "NodeEvent",
]


class ConnectionPath(str, enum.Enum):
    """How bytes reach a peer."""

    DIRECT = "direct"  # a connection one side dialled to the other's address
    RELAYED = "relayed"  # through a circuit relay (``/p2p-circuit``)
    HOLE_PUNCHED = "hole-punched"  # a direct connection made by DCUtR's simultaneous open

    def __str__(self) -> str:
        return self.value

    @property
    def is_direct(self) -> bool:
        return self is not ConnectionPath.RELAYED


@dataclass(frozen=True)
class Connected:
    """The receiver reached the sharer."""

    peer_id: str
    path: ConnectionPath
    rtt_ms: float | None


@dataclass(frozen=True)
class PathUpgraded:
    """A relayed connection to the sharer became direct (receiver side)."""

    peer_id: str
    path: ConnectionPath  # HOLE_PUNCHED or DIRECT
    seconds: float  # from the relayed connection (or the transfer's start) to the direct one


@dataclass(frozen=True)
class Upgraded:
    """DCUtR: a relayed connection now has a direct sibling carrying new streams."""

    peer_id: str
    role: str  # "initiator" | "responder"
    method: str  # "unilateral" | "hole-punch" | "birthday" (port probing through a symmetric NAT)
    elapsed: float  # from the start of the upgrade to the direct connection
    rounds: int
    dials: int  # TCP connection attempts in the winning round
    rtt: float | None
    addr: str

    event: str = "upgraded"


@dataclass(frozen=True)
class UpgradeFailed:
    peer_id: str
    role: str
    elapsed: float
    rounds: int
    reason: str

    event: str = "upgrade_failed"


@dataclass(frozen=True)
class ReachabilityChanged:
    """AutoNAT's verdict on whether others can dial us."""

    reachability: str  # public | private | unknown
    confirmed: bool
    addrs: tuple[str, ...]


@dataclass(frozen=True)
class NatDiscovered:
    """What the relays' STUN responders (or identify) showed of our NAT."""

    mapping: str
    public: str | None  # the listen port's public mapping, when predictable
    punchable: bool


@dataclass(frozen=True)
class RelaysChanged:
    """A relay reservation started or ended: our relayed addresses now."""

    addrs: tuple[str, ...]


@dataclass(frozen=True)
class AddressesChanged:
    """What :meth:`Node.addresses` gives changed: an interface address came or
    went (the kernel said so), a relay reservation started or ended, or
    AutoNAT's verdict moved. Emitted once per change, with the new list."""

    addrs: tuple[str, ...]


@dataclass(frozen=True)
class RelayServiceChanged:
    """This node started or stopped relaying for others (a community relay)."""

    serving: bool
    reason: str


@dataclass(frozen=True)
class Waiting:
    """What a receiver is waiting for now, in words for the person watching
    (learning its NAT mapping, looking for the sharer, hole punching, a
    reconnect): a silent wait of up to a minute looked like a hang."""

    what: str


TraversalEvent = Upgraded | UpgradeFailed | ReachabilityChanged | NatDiscovered

NodeEvent = (
    TransferEvent
    | TraversalEvent
    | Connected
    | PathUpgraded
    | RelaysChanged
    | AddressesChanged
    | RelayServiceChanged
    | Waiting
)
