"""The host façade's value types: peer IDs, key pairs, signed envelopes and
the protobuf schemas we share with py-libp2p. Pure: no trio, no sockets.

Part of the one door to py-libp2p (with ``node/host.py``): modules that
parse a peer ID, load an identity key, sign a voucher or build a Kademlia
message call these, never ``libp2p`` itself. py-libp2p is imported on first
use, after the lean import is installed (never at import time, so importing
p2pshare leaves py-libp2p alone); the schemas (:data:`KadMessage`,
:data:`circuit_pb`, :data:`crypto_pb`) are attributes loaded on first access.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _libp2p_lean_import

if TYPE_CHECKING:
    from libp2p.crypto.keys import KeyPair as KeyPair
    from libp2p.crypto.keys import PrivateKey as PrivateKey
    from libp2p.crypto.pb import crypto_pb2 as crypto_pb
    from libp2p.kad_dht.pb.kademlia_pb2 import Message as KadMessage
    from libp2p.relay.circuit_v2.pb import circuit_pb2 as circuit_pb

__all__ = [
    "KadMessage",
    "KeyPair",
    "PrivateKey",
    "circuit_pb",
    "crypto_pb",
    "ED25519",
    "Opened",
    "PeerRecord",
    "load",
    "peer_id_to_bytes",
    "peer_id_to_text",
    "peer_id_of_key",
    "new_ed25519_key_pair",
    "ed25519_key_pair",
    "ed25519_parts",
    "encode_private_key",
    "decode_private_key",
    "seal_envelope",
    "open_envelope",
    "open_peer_record",
]

ED25519 = 1  # crypto.pb KeyType.Ed25519

# name -> (module, attribute or None for the module itself)
_SCHEMAS = {
    "KadMessage": ("libp2p.kad_dht.pb.kademlia_pb2", "Message"),
    "circuit_pb": ("libp2p.relay.circuit_v2.pb.circuit_pb2", None),
    "crypto_pb": ("libp2p.crypto.pb.crypto_pb2", None),
}


def load() -> None:
    """Ready py-libp2p for import: the lean import goes first (a no-op once
    py-libp2p is imported, or when switched off)."""
    if "libp2p" not in sys.modules:
        _libp2p_lean_import.install()


if not TYPE_CHECKING:  # mypy sees the typed names above, not this hook

    def __getattr__(name: str) -> Any:
        if name not in _SCHEMAS:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        load()
        module_name, attr = _SCHEMAS[name]
        module = importlib.import_module(module_name)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value


# -- peer IDs -------------------------------------------------------------------


def peer_id_to_bytes(text: str) -> bytes:
    """The multihash bytes of a base58 peer ID; ValueError if it is not one."""
    load()
    from libp2p.peer.id import ID

    try:
        return bytes(ID.from_base58(text).to_bytes())
    except Exception:
        raise ValueError(f"bad peer ID {text[:64]!r}") from None


def peer_id_to_text(raw: bytes) -> str:
    """The base58 text of peer ID bytes (not validated, as py-libp2p's ``ID``)."""
    load()
    from libp2p.peer.id import ID

    return str(ID(raw).to_base58())


def peer_id_of_key(public_key: Any) -> bytes:
    """The peer ID bytes of a py-libp2p public key."""
    load()
    from libp2p.peer.id import ID

    return bytes(ID.from_pubkey(public_key).to_bytes())


# -- key pairs --------------------------------------------------------------------


def new_ed25519_key_pair() -> KeyPair:
    load()
    from libp2p.crypto.ed25519 import create_new_key_pair

    return create_new_key_pair()


def ed25519_key_pair(seed: bytes) -> KeyPair:
    """The key pair of a 32-byte Ed25519 seed; ValueError if invalid."""
    load()
    from libp2p.crypto.ed25519 import Ed25519PrivateKey
    from libp2p.crypto.keys import KeyPair

    try:
        priv = Ed25519PrivateKey.from_bytes(seed)
        return KeyPair(priv, priv.get_public_key())
    except Exception:
        raise ValueError("invalid Ed25519 private key") from None


def ed25519_parts(key_pair: KeyPair) -> tuple[bytes, bytes] | None:
    """(seed, public key) of an Ed25519 key pair; None for other key types."""
    load()
    from libp2p.crypto.keys import KeyType

    if key_pair.private_key.get_type() != KeyType.Ed25519:
        return None
    return bytes(key_pair.private_key.to_bytes()), bytes(key_pair.public_key.to_bytes())


def encode_private_key(key_type: int, data: bytes) -> bytes:
    """The standard libp2p ``PrivateKey`` protobuf."""
    load()
    from libp2p.crypto.pb import crypto_pb2

    msg = crypto_pb2.PrivateKey(key_type=key_type, data=data)  # type: ignore[arg-type]
    return bytes(msg.SerializeToString())


def decode_private_key(data: bytes) -> tuple[int, bytes]:
    """(key type, key bytes) of a ``PrivateKey`` protobuf; ValueError if not one."""
    load()
    from libp2p.crypto.pb import crypto_pb2

    try:
        msg = crypto_pb2.PrivateKey.FromString(data)
    except Exception:
        raise ValueError("not a libp2p protobuf private key") from None
    return int(msg.key_type), bytes(msg.data)


# -- signed envelopes ---------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    """A signed envelope whose signature holds."""

    signer: bytes  # peer ID bytes of the signing key
    payload_type: bytes
    payload: bytes


@dataclass(frozen=True)
class PeerRecord:
    """A verified signed peer record (``libp2p-peer-record``)."""

    signer: bytes
    peer_id: bytes
    seq: int
    addrs: list[bytes]


def seal_envelope(private_key: PrivateKey, domain: str, payload_type: bytes, payload: bytes) -> bytes:
    """A marshalled signed envelope (libp2p RFC 0002) over ``payload``."""
    load()
    from libp2p.peer.envelope import Envelope, make_unsigned

    signature = private_key.sign(make_unsigned(domain, payload_type, payload))
    env = Envelope(private_key.get_public_key(), payload_type, payload, signature)
    return bytes(env.marshal_envelope())


def open_envelope(data: bytes, domain: str) -> Opened:
    """Unmarshal and verify an envelope signed for ``domain``; ValueError if bad."""
    load()
    from libp2p.peer.envelope import unmarshal_envelope
    from libp2p.peer.id import ID

    try:
        env = unmarshal_envelope(data)
        env.validate(domain)
    except Exception as e:
        raise ValueError(type(e).__name__) from None
    return Opened(bytes(ID.from_pubkey(env.public_key).to_bytes()), bytes(env.payload_type), bytes(env.raw_payload))


def open_peer_record(data: bytes) -> PeerRecord:
    """Verify a signed peer record envelope; ValueError if it does not hold."""
    load()
    from libp2p.peer.envelope import consume_envelope
    from libp2p.peer.id import ID

    try:
        env, rec = consume_envelope(data, "libp2p-peer-record")
        return PeerRecord(
            bytes(ID.from_pubkey(env.public_key).to_bytes()),
            bytes(rec.peer_id.to_bytes()),
            int(rec.seq),
            [bytes(a.to_bytes()) for a in rec.addrs],
        )
    except Exception as e:
        raise ValueError(f"bad peer record: {type(e).__name__}") from None
