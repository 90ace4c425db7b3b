"""Resource manager: limits on inbound connections, streams and memory per
peer, per protocol and in total, with small budgets before authentication.

Pure accounting (``manager``) and the numbers (``limits``); the adapter that
feeds it from py-libp2p is ``node/_libp2p_rcmgr.py``. Which inbound Kademlia
streams a DHT server serves is ``kad_streams`` (fed by ``node/_libp2p_kad_streams.py``).
"""

from .limits import DEFAULT_LIMITS, Limits, ScopeLimit
from .manager import (
    ConnectionScope,
    Resource,
    ResourceLimitExceeded,
    ResourceManager,
    ScopeKind,
    StreamScope,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "ScopeLimit",
    "ConnectionScope",
    "Resource",
    "ResourceLimitExceeded",
    "ResourceManager",
    "ScopeKind",
    "StreamScope",
]
