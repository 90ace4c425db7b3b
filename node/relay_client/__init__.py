"""Circuit relay v2 client: reservations, incoming circuits, dialing via relays.

Only ``relay.wire`` is shared with the relay server.
"""

from node.relay_client._client import (
    RelayClient,
    RelayError,
    ReservationState,
    open_relay_client,
    parse_relay_addr,
)

__all__ = ["RelayClient", "RelayError", "ReservationState", "open_relay_client", "parse_relay_addr"]
