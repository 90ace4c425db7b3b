"""Kademlia discovery (``/ipfs/kad/1.0.0``): find who shares a code, and where a peer is now.

::

    async with open_discovery(host, bootstrap=DEFAULT_BOOTSTRAP,
                              peers_file=path, server_mode=True) as disc:
        await disc.wait_bootstrapped(10)
        await disc.advertise(sharecode.dht_key(code))
        sharers = await disc.find_providers(key, timeout=20, limit=5)
        addrs = await disc.find_peer(peer_id, timeout=20)

Modules: :mod:`.keys`, :mod:`.peers`, :mod:`.lookup`, :mod:`.adverts` and
:mod:`.peers_file` are pure (this package itself imports the trio side);
:mod:`.wire` is the message codec; :mod:`._rpc`, :mod:`.service` and
:mod:`._open` are the trio side.
"""

from ._open import DEFAULT_ADVERTISE_INTERVAL, DEFAULT_REFRESH_INTERVAL, open_discovery
from .dnsaddr import DEFAULT_BOOTSTRAP
from .keys import DiscoveryError, provider_cid, provider_key
from .lookup import LookupStats
from .peers import PeerInfo, merge_peer_infos
from .peers_file import remembers_peers
from .service import Discovery

__all__ = [
    "DEFAULT_ADVERTISE_INTERVAL",
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_REFRESH_INTERVAL",
    "Discovery",
    "DiscoveryError",
    "LookupStats",
    "PeerInfo",
    "merge_peer_infos",
    "open_discovery",
    "provider_cid",
    "provider_key",
    "remembers_peers",
]
