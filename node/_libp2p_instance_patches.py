"""Patches to single py-libp2p objects (a host's swarm, a KadDHT) rather
than to classes: the upstream code each relies on is fingerprinted like the
class patches in ``_libp2p_patches`` (which re-exports these names).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.network.auto_connector import AutoConnector
from libp2p.network.config import RetryConfig
from libp2p.network.swarm import Swarm

from . import _libp2p_fingerprint as _fingerprint

__all__ = [
    "INSTANCE_PATCHES",
    "changed_instance_upstream",
    "no_dial_retries",
    "no_disconnect_records",
    "kad_servers_only",
]

logger = logging.getLogger(__name__)


# -- instance patches -----------------------------------------------------------
# Patches to one object (a host's swarm, a KadDHT) rather than to a class.
# name -> the upstream code each relies on: ((owner, attribute, sha256), ...).
# When that code changed, the object is left stock (one warning) and
# tests/node/test_libp2p_patches.py fails.
INSTANCE_PATCHES: dict[str, tuple[tuple[Any, str, str], ...]] = {
    # Swarm.retry_config is read only by _dial_with_retry.
    "no_dial_retries": (
        (Swarm, "_dial_with_retry", "bd2025f00c84dddb6edaebd5555399123c0dbd99a46f8aca930809c2636fb418"),
    ),
    # The swarm records each disconnect for the auto-connector (record_disconnect,
    # its one caller notify_disconnected); only the connector's own loop
    # (maybe_connect, a no-op once stopped) reads and prunes the record.
    "no_disconnect_records": (
        (AutoConnector, "record_disconnect", "213dfad4e057e706a083c83827ace54418829303baf7a92c4c1a5e08b0ea6307"),
        (AutoConnector, "maybe_connect", "018fac95eafc2413f4d0e79fd048e93528191ee55afbd083c322b94e2caafab0"),
        (Swarm, "notify_disconnected", "2d0650609e08818f96352a892bf89b05e2142ba8de22171292e1559f479f2179"),
    ),
    # KadDHT.add_peer's only caller is the inbound handler, _do_handle_stream.
    "kad_servers_only": (
        (KadDHT, "add_peer", "6a2b045848b918ec5f9bd9458167f94bfaac7530d22636b6911e286c896672b2"),
        (KadDHT, "_do_handle_stream", "5bbaed4d3cdf488c3c63e54f8434bd2de8c0b5050b800cc94ee623fc8e0c63b4"),
    ),
}


def changed_instance_upstream(name: str, *, by_file: bool = True) -> list[str]:
    """Upstream functions instance patch ``name`` relies on whose source changed
    (upstream's, where a class patch replaced one)."""
    return _fingerprint.changed(INSTANCE_PATCHES[name], by_file=by_file)


def _instance_patch_ok(name: str) -> bool:
    changed = changed_instance_upstream(name)
    if changed:
        logger.warning("py-libp2p changed (%s): patch %s not applied", ", ".join(changed), name)
    return not changed


def no_dial_retries(network: Any) -> bool:
    """No hidden retry backoff on dials: our dial race and the callers'
    timeouts decide (upstream retries a failed dial 3 times, up to ~7 s)."""
    if not _instance_patch_ok("no_dial_retries"):
        return False
    network.retry_config = RetryConfig(max_retries=0)
    return True


def no_disconnect_records(network: Any) -> bool:
    """Keep no per-peer disconnect record in a swarm whose auto-connector is stopped.

    The swarm stores the time of every disconnect, by peer ID, so the
    auto-connector does not redial at once; only the auto-connector's loop
    prunes that dict, and ``open_host`` stops the auto-connector (we dial
    the peers we need, never the whole peerstore). So the dict grew by one
    entry for every peer ever met: ~80 bytes each, for good (seen in the
    soak's heap dumps, issue 9). Stopped, nothing reads it.
    """
    if not _instance_patch_ok("no_disconnect_records"):
        return False

    def record_nothing(peer_id: Any) -> None:
        return None

    network.auto_connector.record_disconnect = record_nothing
    return True


def kad_servers_only(dht: Any, host: Any, kad_protocol: str, on_added: Callable[[], None] | None = None) -> bool:
    """Admit only Kademlia servers to ``dht``'s routing table from inbound RPCs.

    py-libp2p adds every peer that queries us to the routing table, DHT
    clients too; the Kademlia spec (and go/js) admit only peers that serve
    the protocol. In 0.8.1 the inbound handler is ``KadDHT.add_peer``'s only
    caller; our own lookups use ``routing_table.add_peer`` directly.
    ``on_added`` is called after every peer added this way.
    """
    if not _instance_patch_ok("kad_servers_only"):
        return False

    async def add_inbound(peer_id: Any, *, skip_server_mode_check: bool = False) -> bool:
        try:
            protocols = host.get_peerstore().get_protocols(peer_id)
        except Exception:  # noqa: BLE001 - unknown peer: not a server we know of
            return False
        if kad_protocol not in protocols:
            return False
        added = bool(await dht.routing_table.add_peer(peer_id))
        if added and on_added is not None:
            on_added()
        return added

    dht.add_peer = add_inbound
    return True
