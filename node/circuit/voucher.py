"""Reservation vouchers: the spec's signed envelope (domain
``libp2p-relay-rsvp``, payload type multicodec 0x0302) over a canonical
``Voucher`` protobuf. Advisory in the spec; we sign them so clients of other
implementations that check them find a valid one.
"""

from __future__ import annotations

from dataclasses import dataclass

from libp2p.crypto.keys import PrivateKey
from libp2p.peer.envelope import Envelope, make_unsigned, unmarshal_envelope
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.pb import circuit_pb2 as pb

from p2pshare.errors import ProtocolViolation
from p2pshare.node.circuit.wire import VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE, encode_voucher_payload

__all__ = ["make_voucher", "open_voucher", "VoucherInfo", "VoucherError"]


class VoucherError(ProtocolViolation):
    """The voucher is malformed or its signature does not hold."""


@dataclass(frozen=True)
class VoucherInfo:
    relay: bytes
    peer: bytes
    expiration: int


def make_voucher(private_key: PrivateKey, relay: bytes, peer: bytes, expiration: int) -> bytes:
    """A marshalled signed envelope vouching for ``peer``'s reservation."""
    payload = encode_voucher_payload(relay, peer, expiration)
    signature = private_key.sign(make_unsigned(VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE, payload))
    env = Envelope(private_key.get_public_key(), VOUCHER_PAYLOAD_TYPE, payload, signature)
    return bytes(env.marshal_envelope())


def open_voucher(data: bytes) -> VoucherInfo:
    """Verify a voucher's signature and that the signer is its ``relay``."""
    try:
        env = unmarshal_envelope(data)
        env.validate(VOUCHER_DOMAIN)
    except Exception as e:
        raise VoucherError(f"bad voucher envelope: {type(e).__name__}") from None
    if env.payload_type != VOUCHER_PAYLOAD_TYPE:
        raise VoucherError("voucher envelope has the wrong payload type")
    v = pb.Voucher()
    try:
        v.ParseFromString(env.raw_payload)
    except Exception:
        raise VoucherError("voucher payload is not a Voucher protobuf") from None
    info = VoucherInfo(bytes(v.relay), bytes(v.peer), int(v.expiration))
    if ID.from_pubkey(env.public_key).to_bytes() != info.relay:
        raise VoucherError("voucher is not signed by its relay")
    return info
