"""Reservation vouchers: the spec's signed envelope (domain
``libp2p-relay-rsvp``, payload type multicodec 0x0302) over a canonical
``Voucher`` protobuf. Advisory in the spec; we sign them so clients of other
implementations that check them find a valid one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from p2pshare.errors import ProtocolViolation
from p2pshare.node import _libp2p_records as records
from p2pshare.node.circuit.wire import VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE, encode_voucher_payload

if TYPE_CHECKING:
    from p2pshare.node.host import PrivateKey

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
    return records.seal_envelope(private_key, VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE, payload)


def open_voucher(data: bytes) -> VoucherInfo:
    """Verify a voucher's signature and that the signer is its ``relay``."""
    try:
        env = records.open_envelope(data, VOUCHER_DOMAIN)
    except ValueError as e:
        raise VoucherError(f"bad voucher envelope: {e}") from None
    if env.payload_type != VOUCHER_PAYLOAD_TYPE:
        raise VoucherError("voucher envelope has the wrong payload type")
    v = records.circuit_pb.Voucher()
    try:
        v.ParseFromString(env.payload)
    except Exception:
        raise VoucherError("voucher payload is not a Voucher protobuf") from None
    info = VoucherInfo(bytes(v.relay), bytes(v.peer), int(v.expiration))
    if env.signer != info.relay:
        raise VoucherError("voucher is not signed by its relay")
    return info
