"""DCUtR (``/libp2p/dcutr``): upgrade relayed connections by TCP hole punching.

Pure parts: ``wire`` (HolePunch messages), ``policy`` (roles, exchanges,
address filters, timing, events). Trio adapters: ``_trio_punch`` (sockets),
``_trio_libp2p`` (swarm upgrade), ``_trio_service`` (:func:`open_dcutr`).
"""

from p2pshare.node.dcutr.policy import PunchConfig, Role, Upgraded, UpgradeFailed
from p2pshare.node.dcutr.wire import PROTOCOL_ID

__all__ = ["PROTOCOL_ID", "PunchConfig", "Role", "Upgraded", "UpgradeFailed"]
