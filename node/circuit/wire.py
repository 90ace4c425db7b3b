"""Circuit relay v2 wire schema: protocol IDs, messages, framing, validation.

The one module the relay server and the relay client share. Pure: no trio,
no sockets. Messages are the spec's protobufs (libp2p/specs relay/circuit-v2.md,
encoded with py-libp2p's generated ``circuit_pb2``, whose schema matches the
spec), each prefixed by its unsigned-varint length. Every decoded message is
validated into a frozen dataclass; anything malformed, oversized or out of
place raises :class:`WireError` carrying the status to answer with
(``MALFORMED_MESSAGE`` / ``UNEXPECTED_MESSAGE``).

Readers take bytes one varint byte at a time and then exactly the body, so they
never consume bytes past a message: after ``STATUS: OK`` the same stream
carries the relayed connection.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from p2pshare.errors import ProtocolViolation
from p2pshare.node import _libp2p_records
from p2pshare.node.pbwire import PbError, encode_uvarint
from p2pshare.node.pbwire import read_frame as read_pb_frame

if TYPE_CHECKING:
    from p2pshare.node._libp2p_records import circuit_pb as pb
else:

    class _LazyPb:
        """py-libp2p's generated schema (through the host façade), imported on
        first use: importing it runs ``libp2p/__init__`` (~1 s), which
        ``p2pshare --help`` should not pay."""

        def __getattr__(self, name: str) -> Any:
            return getattr(_libp2p_records.circuit_pb, name)

    pb = _LazyPb()

__all__ = [
    "HOP_PROTOCOL_ID",
    "STOP_PROTOCOL_ID",
    "MAX_MESSAGE_SIZE",
    "Status",
    "HopType",
    "StopType",
    "Limit",
    "Peer",
    "Reservation",
    "HopMessage",
    "StopMessage",
    "WireError",
    "encode_hop",
    "encode_stop",
    "decode_hop",
    "decode_stop",
    "encode_varint",
    "decode_varint",
    "read_frame",
    "read_hop",
    "read_stop",
    "encode_voucher_payload",
    "check_peer_id",
    "VOUCHER_DOMAIN",
    "VOUCHER_PAYLOAD_TYPE",
]

HOP_PROTOCOL_ID = "/libp2p/circuit/relay/0.2.0/hop"
STOP_PROTOCOL_ID = "/libp2p/circuit/relay/0.2.0/stop"

# go-libp2p and rust-libp2p bound relay messages to 4 KiB as well.
MAX_MESSAGE_SIZE = 4096
_MAX_ID_LEN = 128  # a peer ID multihash (identity-hashed keys stay well below)
_MAX_ADDR_LEN = 512
_MAX_ADDRS = 32
_MAX_VOUCHER_LEN = 2048
_MAX_VARINT_BYTES = 10
_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1

# Signed envelope domain and payload type: multicodec 0x0302 as raw bytes, as
# go-libp2p (proto.RecordCodec) and js-libp2p write it — not its varint.
VOUCHER_DOMAIN = "libp2p-relay-rsvp"
VOUCHER_PAYLOAD_TYPE = b"\x03\x02"


class Status(enum.IntEnum):
    UNUSED = 0
    OK = 100
    RESERVATION_REFUSED = 200
    RESOURCE_LIMIT_EXCEEDED = 201
    PERMISSION_DENIED = 202
    CONNECTION_FAILED = 203
    NO_RESERVATION = 204
    MALFORMED_MESSAGE = 400
    UNEXPECTED_MESSAGE = 401


class HopType(enum.IntEnum):
    RESERVE = 0
    CONNECT = 1
    STATUS = 2


class StopType(enum.IntEnum):
    CONNECT = 0
    STATUS = 1


class WireError(ProtocolViolation):
    """A peer's message is unusable; ``status`` is what to answer with."""

    def __init__(self, message: str, status: Status = Status.MALFORMED_MESSAGE) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limit:
    """Limits on one relayed connection; 0 means unlimited (as in the spec)."""

    duration: int = 0  # seconds
    data: int = 0  # bytes, per direction

    @property
    def unlimited(self) -> bool:
        return self.duration == 0 and self.data == 0


@dataclass(frozen=True)
class Peer:
    id: bytes
    addrs: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Reservation:
    expire: int  # UTC UNIX seconds
    addrs: tuple[bytes, ...] = ()  # binary multiaddrs of the relay, with /p2p/<relay>
    voucher: bytes | None = None


@dataclass(frozen=True)
class HopMessage:
    type: HopType
    peer: Peer | None = None
    reservation: Reservation | None = None
    limit: Limit | None = None
    status: Status | None = None


@dataclass(frozen=True)
class StopMessage:
    type: StopType
    peer: Peer | None = None
    limit: Limit | None = None
    status: Status | None = None


# -- varint framing ---------------------------------------------------------


def encode_varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varint must be non-negative")
    return encode_uvarint(value)


def decode_varint(buf: bytes) -> tuple[int, int] | None:
    """``(value, bytes used)``, or None if ``buf`` ends inside the varint."""
    value = 0
    for i, byte in enumerate(buf[:_MAX_VARINT_BYTES]):
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i > 0 and byte == 0:
                raise WireError("non-minimal varint length prefix")
            return value, i + 1
    if len(buf) >= _MAX_VARINT_BYTES:
        raise WireError("varint length prefix too long")
    return None


def _frame(body: bytes) -> bytes:
    if len(body) > MAX_MESSAGE_SIZE:
        raise ValueError(f"relay message of {len(body)} bytes exceeds {MAX_MESSAGE_SIZE}")
    return encode_varint(len(body)) + body


async def read_frame(read: Callable[[int], Awaitable[bytes]], max_size: int = MAX_MESSAGE_SIZE) -> bytes:
    """Read one length-prefixed body with ``read(n)`` (returns ≤ n bytes, b"" at EOF).

    Reads never go past the body. EOF before a full message raises
    :class:`EOFError`; an oversized or bad prefix raises :class:`WireError`.
    """
    try:
        return await read_pb_frame(read, max_size)
    except PbError as e:
        raise WireError(f"relay message: {e}") from None


async def read_hop(read: Callable[[int], Awaitable[bytes]]) -> HopMessage:
    return decode_hop(await read_frame(read))


async def read_stop(read: Callable[[int], Awaitable[bytes]]) -> StopMessage:
    return decode_stop(await read_frame(read))


# -- encoding ---------------------------------------------------------------


def _peer_pb(peer: Peer) -> pb.PeerId:
    return pb.PeerId(id=peer.id, addrs=list(peer.addrs))


def _limit_pb(limit: Limit) -> pb.Limit:
    out = pb.Limit()
    if limit.duration:
        out.duration = limit.duration
    if limit.data:
        out.data = limit.data
    return out


def encode_hop(msg: HopMessage) -> bytes:
    """The framed (length-prefixed) wire bytes of ``msg``."""
    out = pb.HopMessage(type=pb.HopMessage.Type.Value(msg.type.name))
    if msg.peer is not None:
        out.peer.CopyFrom(_peer_pb(msg.peer))
    if msg.reservation is not None:
        r = msg.reservation
        res = pb.Reservation(expire=r.expire, addrs=list(r.addrs))
        if r.voucher is not None:
            res.voucher = r.voucher
        out.reservation.CopyFrom(res)
    if msg.limit is not None:
        out.limit.CopyFrom(_limit_pb(msg.limit))
    if msg.status is not None:
        out.status = pb.Status.Value(msg.status.name)
    return _frame(out.SerializeToString())


def encode_stop(msg: StopMessage) -> bytes:
    out = pb.StopMessage(type=pb.StopMessage.Type.Value(msg.type.name))
    if msg.peer is not None:
        out.peer.CopyFrom(_peer_pb(msg.peer))
    if msg.limit is not None:
        out.limit.CopyFrom(_limit_pb(msg.limit))
    if msg.status is not None:
        out.status = pb.Status.Value(msg.status.name)
    return _frame(out.SerializeToString())


def encode_voucher_payload(relay: bytes, peer: bytes, expiration: int) -> bytes:
    """The canonical ``Voucher`` protobuf (fields in id order, nothing else)."""
    return bytes(pb.Voucher(relay=relay, peer=peer, expiration=expiration).SerializeToString())


# -- decoding and validation ------------------------------------------------


def _parse(cls: type, body: bytes, what: str) -> object:
    if len(body) > MAX_MESSAGE_SIZE:
        raise WireError(f"{what} of {len(body)} bytes exceeds {MAX_MESSAGE_SIZE}")
    msg = cls()
    try:
        msg.ParseFromString(body)
    except Exception:
        raise WireError(f"{what} is not a valid protobuf") from None
    return msg


def _addrs(raw: object, what: str) -> tuple[bytes, ...]:
    addrs = tuple(bytes(a) for a in raw)  # type: ignore[attr-defined]
    if len(addrs) > _MAX_ADDRS:
        raise WireError(f"{what}: {len(addrs)} addresses (at most {_MAX_ADDRS})")
    for a in addrs:
        if not a or len(a) > _MAX_ADDR_LEN:
            raise WireError(f"{what}: address of {len(a)} bytes")
    return addrs


def check_peer_id(pid: bytes) -> None:
    """A peer ID is a multihash: identity (0x00) or sha2-256 (0x12) with a matching length."""
    if not pid or len(pid) > _MAX_ID_LEN:
        raise WireError(f"peer ID of {len(pid)} bytes")
    code = decode_varint(pid)
    if code is None or code[0] not in (0x00, 0x12):
        raise WireError("peer ID is not an identity or sha2-256 multihash")
    length = decode_varint(pid[code[1] :])
    if length is None or code[1] + length[1] + length[0] != len(pid):
        raise WireError("peer ID multihash length does not match")
    if code[0] == 0x12 and length[0] != 32:
        raise WireError("sha2-256 peer ID must hold 32 bytes")


def _peer(raw: pb.PeerId, what: str) -> Peer:
    pid = bytes(raw.id)
    try:
        check_peer_id(pid)
    except WireError as e:
        raise WireError(f"{what}: {e}") from None
    return Peer(pid, _addrs(raw.addrs, what))


def _limit(raw: pb.Limit) -> Limit:
    duration = int(raw.duration) if raw.HasField("duration") else 0
    data = int(raw.data) if raw.HasField("data") else 0
    if not (0 <= duration <= _U32 and 0 <= data <= _U64):  # guaranteed by protobuf
        raise WireError("limit out of range")
    return Limit(duration, data)


def _status(raw: int) -> Status:
    try:
        return Status(raw)
    except ValueError:
        raise WireError(f"unknown status code {raw}") from None


def decode_hop(body: bytes) -> HopMessage:
    """Validate one HopMessage body (without its length prefix)."""
    m: pb.HopMessage = _parse(pb.HopMessage, body, "HopMessage")  # type: ignore[assignment]
    if not m.HasField("type"):
        raise WireError("HopMessage without a type")
    try:
        typ = HopType(m.type)
    except ValueError:
        raise WireError(f"unknown HopMessage type {m.type}") from None
    peer = _peer(m.peer, "HopMessage.peer") if m.HasField("peer") else None
    reservation = None
    if m.HasField("reservation"):
        r = m.reservation
        if not r.HasField("expire"):
            raise WireError("reservation without an expiry")
        voucher = bytes(r.voucher) if r.HasField("voucher") else None
        if voucher is not None and len(voucher) > _MAX_VOUCHER_LEN:
            raise WireError("reservation voucher too large")
        reservation = Reservation(int(r.expire), _addrs(r.addrs, "reservation"), voucher)
    limit = _limit(m.limit) if m.HasField("limit") else None
    status = _status(m.status) if m.HasField("status") else None
    if typ == HopType.CONNECT and peer is None:
        raise WireError("CONNECT without a peer")
    if typ == HopType.STATUS and status is None:
        raise WireError("STATUS without a status code")
    return HopMessage(typ, peer, reservation, limit, status)


def decode_stop(body: bytes) -> StopMessage:
    """Validate one StopMessage body (without its length prefix)."""
    m: pb.StopMessage = _parse(pb.StopMessage, body, "StopMessage")  # type: ignore[assignment]
    if not m.HasField("type"):
        raise WireError("StopMessage without a type")
    try:
        typ = StopType(m.type)
    except ValueError:
        raise WireError(f"unknown StopMessage type {m.type}") from None
    peer = _peer(m.peer, "StopMessage.peer") if m.HasField("peer") else None
    limit = _limit(m.limit) if m.HasField("limit") else None
    status = _status(m.status) if m.HasField("status") else None
    if typ == StopType.CONNECT and peer is None:
        raise WireError("CONNECT without a peer")
    if typ == StopType.STATUS and status is None:
        raise WireError("STATUS without a status code")
    return StopMessage(typ, peer, limit, status)
