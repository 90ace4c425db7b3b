"""What a ``Node`` starts with (``NodeConfig``) and what ``start_sharing``
returns (``ShareInfo``): plain records, apart from the node's wiring in
``node/api.py`` (which re-exports them; import them from either)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2pshare import sharecode
from p2pshare.node.autonat.client import AutoNATConfig
from p2pshare.node.circuit.limits import RelayLimits
from p2pshare.node.community import RelayServiceMode
from p2pshare.node.preparation import Preparation
from p2pshare.transfer import PreparedShare

__all__ = ["DEFAULT_LISTEN", "NodeConfig", "ShareInfo"]

DEFAULT_LISTEN = ("/ip4/0.0.0.0/tcp/0",)


@dataclass(frozen=True)
class ShareInfo:
    """What ``start_sharing`` returns: the codes to hand out and the share itself."""

    code: sharecode.ShareCode
    legacy: sharecode.LegacyCode | None
    #: The listing and hashing, which go on after ``start_sharing`` returned
    #: (``scanned``, then ``ready``); the listing's warnings are ``scan.warnings``.
    preparation: Preparation
    share_id: bytes

    def encode(self) -> str:
        return self.code.encode()

    @property
    def prepared(self) -> PreparedShare:
        """The hashed share; only once ``preparation.ready`` is set without error."""
        if self.preparation.prepared is None:
            raise RuntimeError("the share is still being hashed (or failed)")
        return self.preparation.prepared


@dataclass
class NodeConfig:
    """How a node starts. ``identity_path`` None means a fresh throwaway key."""

    identity_path: Path | None = None
    identity_fallbacks: Sequence[Path] = ()  # when another process holds it (``identity.node_identity``)
    listen_addrs: Sequence[str] = DEFAULT_LISTEN
    fallback_listen_addrs: Sequence[str] | None = None
    relays: Sequence[str] = ()
    #: Hold reservations on ``relays`` (sharers, nodes). A receiver only
    #: dials through relays, which needs none: its reservation only took a
    #: slot of the relay's (and said "relay … unusable" when it restarted).
    reserve: bool = True
    force_relay: bool = False  # receivers: dial only through relays (tests, benchmarks)
    bootstrap: Sequence[str] = ()
    peers_file: Path | None = None
    dht_server: bool = False  # answer others' DHT queries (publicly reachable nodes only)
    autonat: AutoNATConfig | None = None  # check reachability against the relays
    autonat_server: bool = False  # serve AutoNAT dial-backs for others (long-lived nodes)
    autorelay: bool = True  # find relays by itself while not confirmed public (sharers, nodes)
    relay_service: RelayServiceMode = RelayServiceMode.OFF  # relay for others (a community relay)
    relay_limits: RelayLimits = field(default_factory=RelayLimits)
    #: Local discovery (mDNS): announce our LAN addresses, and put peers met
    #: on the LAN in the DHT's routing table. Off here (tests run many nodes
    #: on one host); the CLI turns it on unless ``--no-mdns``.
    mdns: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
