"""AutoNAT v1 (``/libp2p/autonat/1.0.0``): both roles.

Pure parts: ``wire`` (messages), ``client`` (verdict + schedule), ``server``
(dial policy, rate limits). Trio adapters: ``_trio_client`` (:func:`open_autonat`)
and ``_trio_server`` (:func:`serve_autonat_server`).
"""

from p2pshare.node.autonat.client import AutoNATConfig, Outcome, Reachability, ServerResult, Verdict
from p2pshare.node.autonat.server import ServerConfig
from p2pshare.node.autonat.wire import PROTOCOL_ID

__all__ = [
    "PROTOCOL_ID",
    "AutoNATConfig",
    "Outcome",
    "Reachability",
    "ServerConfig",
    "ServerResult",
    "Verdict",
]
