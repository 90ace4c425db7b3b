"""DHT keys for shares, and Kademlia distance. Pure: no trio, no libp2p.

A share is advertised under the *multihash* of its 32-byte ``dht_key``
(sha2-256: ``0x12 0x20 || digest``), the same bytes go-libp2p and js-libp2p
use as the provider key of a CID. So ``provider_cid(dht_key)`` (CIDv1, raw
codec) is a content ID any implementation can look up, e.g. js-libp2p's
``contentRouting.findProviders(CID.parse(cid))``. ``dht_key`` is already a
domain-separated hash of the human code; nothing else about a share (the
code, the encryption key) ever reaches the DHT.
"""

from __future__ import annotations

import base64
import hashlib

from p2pshare.node.errors import LocalNodeError

__all__ = [
    "DHT_KEY_BYTES",
    "DiscoveryError",
    "kad_distance",
    "kad_target",
    "provider_cid",
    "provider_key",
]

DHT_KEY_BYTES = 32
_MH_SHA2_256 = b"\x12\x20"
_CID_V1 = 0x01
_CODEC_RAW = 0x55


class DiscoveryError(LocalNodeError):
    """Bad input to the discovery API (one-line message, never the key)."""


def provider_key(dht_key: bytes) -> bytes:
    """The Kademlia key of a share: the sha2-256 multihash of ``dht_key``."""
    if not isinstance(dht_key, bytes) or len(dht_key) != DHT_KEY_BYTES:
        size = len(dht_key) if isinstance(dht_key, bytes) else type(dht_key).__name__
        raise DiscoveryError(f"DHT key must be {DHT_KEY_BYTES} bytes, got {size}")
    return _MH_SHA2_256 + dht_key


def provider_cid(dht_key: bytes) -> str:
    """CIDv1 (raw codec) of the share's multihash, base32 (``b...``)."""
    raw = bytes([_CID_V1, _CODEC_RAW]) + provider_key(dht_key)
    return "b" + base64.b32encode(raw).decode("ascii").lower().rstrip("=")


def kad_target(key: bytes) -> int:
    """A key's position in the Kademlia keyspace: ``sha256(key)`` as an int."""
    return int.from_bytes(hashlib.sha256(key).digest(), "big")


def kad_distance(target: int, peer_id: bytes) -> int:
    """XOR distance between a target (from :func:`kad_target`) and a peer ID."""
    return target ^ kad_target(peer_id)
