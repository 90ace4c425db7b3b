"""Resource limits: how much of each resource each scope may hold.

In the spirit of go-libp2p's resource manager (``p2p/host/resource-manager``):
every inbound connection and stream is counted in a chain of scopes before it
may cost more than a few bytes, and refused at once when any scope in the
chain is full. The chains:

* an inbound connection: *system*, *transient* and its *source* (the
  remote IP address) while its Noise handshake runs (the peer is not yet
  authenticated), then *system*, its *peer* and its *established source*
  (the same address: a host cannot hold every connection through many
  peer IDs);
* an inbound stream: *system*, its *peer* and its connection's *source*
  (the remote IP address, if it has one that is not loopback), plus
  *transient* and its *sources* (the peer, and the address) until its
  protocol is negotiated, then the *protocol* (all peers together) and the
  *protocol-peer* scope (that protocol for that peer).

Memory is reserved, not measured: a stream reserves the yamux receive window
it may be sent without reading (256 KiB), and more only when it is granted a
larger window, which it is only once its protocol moves bulk data on it (the
window stays small when the reservation is refused, as in go-yamux). So the
bytes a peer can make us buffer are bounded by the sum of its reservations,
whatever it sends: yamux data beyond the granted window closes the
connection.

The numbers are for a long-lived node or a community relay on a small
machine: 1,024 inbound connections, far fewer handshakes in flight, and
budgets before authentication far below those after it. Outbound
connections and streams are made by our own code, which bounds them where
it makes them; they are not counted here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "KiB",
    "MiB",
    "BULK_WINDOW",
    "BULK_GROWTH",
    "ScopeLimit",
    "Limits",
    "DEFAULT_LIMITS",
    "STREAM_BASE_MEMORY",
    "CONN_MEMORY",
]

KiB = 1024
MiB = 1024 * KiB

#: What one yamux stream may buffer before its first read: the spec's initial window.
STREAM_BASE_MEMORY = 256 * KiB
#: Noise and yamux buffers of one connection (an estimate, reserved per connection).
CONN_MEMORY = 64 * KiB
#: The receive window of a stream moving bulk data (yamux's largest,
#: ``_libp2p_speed.RECV_WINDOW``): what such a stream books beyond its base.
BULK_WINDOW = 16 * MiB
BULK_GROWTH = BULK_WINDOW - STREAM_BASE_MEMORY

# A relay's circuits (``circuit.limits.RelayLimits``' defaults). A circuit's
# HOP stream books the bulk window once its bytes flow; so do a target's STOP
# streams. The HOP and STOP budgets hold every circuit at its full window
# *and* every other stream of the protocol at its base, so busy circuits can
# never crowd out a RESERVE or CONNECT (an idle stream books its base only).
_CIRCUITS = 64  # --max-circuits
_CIRCUITS_PER_PEER = 8  # --max-circuits-per-peer (source); --max-circuits-per-reservation (target)
_RELAY_STREAMS = 1024  # HOP (or STOP) streams in all
_RELAY_STREAMS_PER_PEER = 32


def _budget(streams: int, bulk: int) -> int:
    """Memory for ``streams`` streams, ``bulk`` of them at the bulk window."""
    return streams * STREAM_BASE_MEMORY + bulk * BULK_GROWTH


@dataclass(frozen=True)
class ScopeLimit:
    """The most one scope may hold at once (inbound only, see the module docstring)."""

    conns: int = 0
    streams: int = 0
    memory: int = 0

    def __post_init__(self) -> None:
        if min(self.conns, self.streams, self.memory) < 0:
            raise ValueError("limits cannot be negative")


@dataclass(frozen=True)
class Limits:
    """Every scope's limit; ``protocol`` and ``protocol_peer`` fall back to the defaults."""

    system: ScopeLimit
    transient: ScopeLimit
    peer: ScopeLimit
    protocol_default: ScopeLimit
    protocol_peer_default: ScopeLimit
    #: Handshakes in flight from one IP address (IPv6: one /64), and streams
    #: of one peer not yet past negotiation: no one source can take the
    #: whole transient budget.
    transient_source: ScopeLimit = ScopeLimit(conns=16, streams=16, memory=16 * 256 * KiB + 16 * CONN_MEMORY)
    #: Authenticated connections from one IP address (IPv6: one /64), for
    #: their whole life. Peer IDs cost nothing: without it one host held
    #: every system connection through fresh identities, 8 each, and the
    #: node took no one else. go-libp2p allows 8 per IPv4 address; we allow
    #: more for users behind one carrier NAT. Loopback is not counted.
    established_source: ScopeLimit = ScopeLimit(conns=32, streams=0, memory=32 * CONN_MEMORY)
    #: Inbound streams on connections from one IP address (IPv6: one /64),
    #: whatever peer IDs they come from. Without it the 32 identities one
    #: host may connect with (above) could hold every system stream (128
    #: each), all 1,024 of one protocol's and, by never finishing
    #: negotiation, the whole transient budget, so that no one else could
    #: open a stream. 256 is 8 a connection at that cap (users behind one
    #: carrier NAT); its memory, every stream at its base window and 16
    #: circuits (two peers' worth) at the bulk one. Loopback and relayed
    #: connections (no address of their own) are not counted.
    stream_source: ScopeLimit = ScopeLimit(streams=256, memory=_budget(256, 2 * _CIRCUITS_PER_PEER))
    #: Of those, streams still negotiating their protocol: a quarter of the
    #: transient budget.
    transient_stream_source: ScopeLimit = ScopeLimit(streams=32, memory=32 * STREAM_BASE_MEMORY)
    protocol: Mapping[str, ScopeLimit] = field(default_factory=dict)
    protocol_peer: Mapping[str, ScopeLimit] = field(default_factory=dict)

    def for_protocol(self, protocol: str) -> ScopeLimit:
        return self.protocol.get(protocol, self.protocol_default)

    def for_protocol_peer(self, protocol: str) -> ScopeLimit:
        return self.protocol_peer.get(protocol, self.protocol_peer_default)


_KAD = "/ipfs/kad/1.0.0"
_IDENTIFY = "/ipfs/id/1.0.0"
_IDENTIFY_PUSH = "/ipfs/id/push/1.0.0"
_PING = "/ipfs/ping/1.0.0"
_AUTONAT = "/libp2p/autonat/1.0.0"
_DCUTR = "/libp2p/dcutr"
_HOP = "/libp2p/circuit/relay/0.2.0/hop"
_STOP = "/libp2p/circuit/relay/0.2.0/stop"
_TRANSFER = "/p2pshare/transfer/1.0.0"

DEFAULT_LIMITS = Limits(
    # 1,024 inbound connections; streams and memory for all of them busy at
    # once, plus a relay's circuits at their bulk window (a node that relays
    # nothing never books those).
    system=ScopeLimit(conns=1024, streams=4096, memory=_budget(4096, _CIRCUITS) + 1024 * CONN_MEMORY),
    # Before authentication (handshakes in flight) and before a protocol is
    # agreed: small, so strangers cannot hold what authenticated peers need.
    transient=ScopeLimit(conns=128, streams=128, memory=128 * 256 * KiB + 128 * CONN_MEMORY),
    # One peer: a few connections (punched + relayed + a redial), enough
    # streams for a transfer, DHT queries and the control protocols; as a
    # relay's source (or a target's relay), all its circuits busy.
    peer=ScopeLimit(conns=8, streams=128, memory=_budget(128, _CIRCUITS_PER_PEER)),
    protocol_default=ScopeLimit(conns=0, streams=1024, memory=512 * MiB),
    protocol_peer_default=ScopeLimit(conns=0, streams=16, memory=64 * MiB),
    protocol={
        _TRANSFER: ScopeLimit(streams=512, memory=768 * MiB),
        _HOP: ScopeLimit(streams=_RELAY_STREAMS, memory=_budget(_RELAY_STREAMS, _CIRCUITS)),
        # A target's circuits through the relays it reserves on (2, ``api.RELAYS_WANTED``).
        _STOP: ScopeLimit(streams=_RELAY_STREAMS, memory=_budget(_RELAY_STREAMS, 2 * _CIRCUITS_PER_PEER)),
    },
    protocol_peer={
        _KAD: ScopeLimit(streams=32, memory=16 * MiB),
        _IDENTIFY: ScopeLimit(streams=4, memory=2 * MiB),
        _IDENTIFY_PUSH: ScopeLimit(streams=4, memory=2 * MiB),
        _PING: ScopeLimit(streams=2, memory=1 * MiB),
        _AUTONAT: ScopeLimit(streams=4, memory=2 * MiB),
        _DCUTR: ScopeLimit(streams=4, memory=2 * MiB),
        # A relay's circuits from one source; a target's circuits through one relay.
        _HOP: ScopeLimit(streams=_RELAY_STREAMS_PER_PEER, memory=_budget(_RELAY_STREAMS_PER_PEER, _CIRCUITS_PER_PEER)),
        _STOP: ScopeLimit(streams=_RELAY_STREAMS_PER_PEER, memory=_budget(_RELAY_STREAMS_PER_PEER, _CIRCUITS_PER_PEER)),
        # A receiver's retries and the sharer's per-session streams.
        _TRANSFER: ScopeLimit(streams=16, memory=80 * MiB),
    },
)
