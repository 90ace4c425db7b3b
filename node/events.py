"""What a node reports: one module for its event types (pure: no trio, no py-libp2p).

``ConnectionPath`` is how a connection to a peer runs. Its values are the
strings the CLI's ``--json`` events always carried, so the wire of our own
output does not change.
"""

from __future__ import annotations

import enum

__all__ = ["ConnectionPath"]


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
