"""Kademlia wire messages (``/ipfs/kad/1.0.0``): build requests, check answers.

Uses the standard protobuf shipped with py-libp2p; no trio. Every answer is
bounded before anything else looks at it: message size, number of peers,
addresses per peer, address and peer-ID sizes. Signed peer records (the
optional ``signedRecord`` field) are verified only when asked for (find_peer
needs them to tell fresh addresses from stale ones).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import base58
import multiaddr

from p2pshare.errors import ProtocolViolation
from p2pshare.node import _libp2p_records as records
from p2pshare.node.pbwire import frame

from .peers import MAX_ADDRS_PER_PEER, normalize_addr

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_PEERS_PER_ANSWER",
    "Answer",
    "SignedAddrs",
    "WirePeer",
    "WireError",
    "add_provider_request",
    "decode_varint_prefix",
    "encode_frame",
    "find_node_request",
    "get_providers_request",
    "parse_answer",
    "peer_id_from_bytes",
]

logger = logging.getLogger(__name__)

# Largest answer we read: 20 closer peers + 20 providers with signed records
# and 16 addresses each fit in well under 256 KiB.
MAX_MESSAGE_BYTES = 256 * 1024
MAX_PEERS_PER_ANSWER = 32  # k = 20 in every implementation
_MAX_PEER_ID_BYTES = 64
_MAX_ADDR_BYTES = 256
_MAX_RECORD_BYTES = 8 * 1024


class WireError(ProtocolViolation):
    """A malformed or oversized message from a peer (one line)."""


@dataclass(frozen=True)
class SignedAddrs:
    """Addresses from a peer record the peer itself signed."""

    seq: int
    addrs: list[str]


@dataclass(frozen=True)
class WirePeer:
    peer_id: bytes
    addrs: list[str]
    record: SignedAddrs | None = None

    @property
    def peer_id_str(self) -> str:
        return base58.b58encode(self.peer_id).decode("ascii")


@dataclass(frozen=True)
class Answer:
    closer: list[WirePeer]
    providers: list[WirePeer]
    sender_record: SignedAddrs | None


def encode_frame(payload: bytes) -> bytes:
    """Unsigned-varint length prefix + payload."""
    return frame(payload)


def decode_varint_prefix(buf: bytes) -> tuple[int, int] | None:
    """``(length, prefix_size)`` of a frame header, None if incomplete.

    Raises ``WireError`` for a prefix longer than 10 bytes or a length over
    ``MAX_MESSAGE_BYTES``.
    """
    value = 0
    for i, b in enumerate(buf[:10]):
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if value > MAX_MESSAGE_BYTES:
                raise WireError(f"message of {value} bytes is too large")
            return value, i + 1
    if len(buf) >= 10:
        raise WireError("bad length prefix")
    return None


def peer_id_from_bytes(raw: bytes) -> bytes:
    """Check ``raw`` is an identity or sha2-256 multihash peer ID."""
    if not 2 < len(raw) <= _MAX_PEER_ID_BYTES:
        raise WireError("bad peer ID length")
    code, size = raw[0], raw[1]
    if code == 0x00 and size == len(raw) - 2 and size <= 42:
        return raw
    if code == 0x12 and size == 32 and len(raw) == 34:
        return raw
    raise WireError("peer ID is not an identity or sha2-256 multihash")


def _request(kind: int, key: bytes, sender_record: bytes | None) -> records.KadMessage:
    msg = records.KadMessage()
    msg.type = kind  # type: ignore[assignment]
    msg.key = key
    if sender_record:
        msg.senderRecord = sender_record
    return msg


def find_node_request(key: bytes, sender_record: bytes | None = None) -> bytes:
    return encode_frame(_request(records.KadMessage.FIND_NODE, key, sender_record).SerializeToString())


def get_providers_request(key: bytes, sender_record: bytes | None = None) -> bytes:
    return encode_frame(_request(records.KadMessage.GET_PROVIDERS, key, sender_record).SerializeToString())


def add_provider_request(key: bytes, self_id: bytes, addrs: list[str], sender_record: bytes | None = None) -> bytes:
    """ADD_PROVIDER for ourselves (servers refuse records for other peers)."""
    msg = _request(records.KadMessage.ADD_PROVIDER, key, sender_record)
    peer = msg.providerPeers.add()
    peer.id = self_id
    for a in addrs[:MAX_ADDRS_PER_PEER]:
        try:
            peer.addrs.append(multiaddr.Multiaddr(a).to_bytes())
        except Exception:
            logger.debug("not advertising unparsable address %r", a[:200])
    return encode_frame(msg.SerializeToString())


def _addr_text(raw: bytes, peer_id: str) -> str | None:
    if len(raw) > _MAX_ADDR_BYTES:
        return None
    try:
        text = str(multiaddr.Multiaddr(raw))
    except Exception:
        return None
    return normalize_addr(text, peer_id)


def _verify_record(raw: bytes, peer_id: bytes) -> SignedAddrs | None:
    """The addresses of a valid signed peer record for ``peer_id``, else None."""
    if not raw or len(raw) > _MAX_RECORD_BYTES:
        return None
    try:
        rec = records.open_peer_record(raw)
        if rec.peer_id != peer_id:
            return None
        if rec.signer != peer_id:
            return None  # signed by someone else
        pid = records.peer_id_to_text(rec.peer_id)
        addrs = [_addr_text(a, pid) for a in rec.addrs[:MAX_ADDRS_PER_PEER]]
        return SignedAddrs(rec.seq, [a for a in addrs if a])
    except Exception:
        return None


def _peers(entries: object, verify_for: bytes | None) -> list[WirePeer]:
    out: list[WirePeer] = []
    for entry in list(entries)[:MAX_PEERS_PER_ANSWER]:  # type: ignore[call-overload]
        try:
            pid = peer_id_from_bytes(bytes(entry.id))
        except WireError:
            continue
        pid_str = base58.b58encode(pid).decode("ascii")
        addrs: list[str] = []
        for raw in list(entry.addrs)[: 2 * MAX_ADDRS_PER_PEER]:
            text = _addr_text(bytes(raw), pid_str)
            if text and text not in addrs:
                addrs.append(text)
        record = None
        if verify_for is not None and pid == verify_for:
            record = _verify_record(bytes(entry.signedRecord), pid)
        out.append(WirePeer(pid, addrs[:MAX_ADDRS_PER_PEER], record))
    return out


def parse_answer(
    payload: bytes,
    *,
    expect: int,
    sender: bytes,
    verify_for: bytes | None = None,
) -> Answer:
    """Parse an answer of type ``expect`` from ``sender``.

    ``verify_for``: check signed records of that peer (in ``closerPeers`` and,
    when the sender is that peer, in ``senderRecord``).
    """
    if len(payload) > MAX_MESSAGE_BYTES:
        raise WireError("answer too large")
    msg = records.KadMessage()
    try:
        msg.ParseFromString(payload)
    except Exception:
        raise WireError("answer is not a Kademlia message") from None
    if msg.type != expect:
        raise WireError(f"answer of type {int(msg.type)}, expected {expect}")
    sender_record = None
    if verify_for is not None and sender == verify_for and msg.HasField("senderRecord"):
        sender_record = _verify_record(bytes(msg.senderRecord), sender)
    return Answer(
        closer=_peers(msg.closerPeers, verify_for),
        providers=_peers(msg.providerPeers, None),
        sender_record=sender_record,
    )
